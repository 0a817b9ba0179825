"""Base IO that every layer may import: atomic writes (:mod:`baseio.atomic`) and video decode/encode
(:mod:`baseio.video_io`). It imports nothing of the project."""
