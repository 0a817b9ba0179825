"""Video IO and the command-line programs."""
