"""Training loop for PerspNet: progress bar, periodic checkpoints, resume, fixed seeds, loss log and curves."""
from __future__ import annotations

import csv
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from baseio.schema import TRAIN_LOG_CSV
from perspnet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from perspnet.datasets.arkit import ArkitLayoutDataset
from perspnet.datasets.record import FaceRecord
from perspnet.inference import pick_device
from perspnet.network import config as presets
from perspnet.network.losses import LossTargets, perspnet_loss
from perspnet.network.model import PerspNet
from perspnet.crop import CropConfig
from perspnet.training_data import TargetBuilder, collate
from perspnet.validate import check_choice, check_device, check_int, check_range

__all__ = ["TrainConfig", "RecordDataset", "bf16_supported", "scheduled_batches", "train", "plot_curves"]

PRESETS = ("lite", "paper")

LOG_FIELDS = TRAIN_LOG_CSV.names  # documented in docs/outputs.md


@dataclass(frozen=True)
class TrainConfig:
    """A training run (the options of ``perspnet-train``).

    Attributes:
        data: ARKitFace-layout folder with ``index.csv``.
        out: run folder: ``last.pt`` (resume point), ``final.pt``, ``train_log.csv``, ``training_curves.png``.
        preset: ``"lite"`` or ``"paper"`` (:mod:`perspnet.network.config`).
        iterations: optimizer steps.
        batch_size: training examples per step.
        lr: peak learning rate (linear warm-up over ``warmup`` steps, then cosine decay to 2% of it).
        weight_decay: AdamW's decoupled weight decay, applied to every parameter. A resumed run keeps the
            value its optimizer state was saved with.
        warmup: warm-up steps.
        seed: seeds the initial weights, the data order and the augmentation.
        ckpt_every: steps between writes of ``out/last.pt``.
        log_every: steps averaged per row of ``train_log.csv``.
        workers: data-loading processes (0: in the main process).
        threads: torch CPU threads.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        bf16: run the network's forward pass under bfloat16 autocast (weights, optimizer and losses stay
            float32). Only where the device runs bfloat16 natively (:func:`bf16_supported`): emulated, it is
            slower than float32, so it is refused there.
        dropout: channel-dropout probability in both decoders; ``None`` keeps the preset's.
        uv_dropout: the same in the UV-map decoder alone, overriding ``dropout`` there; ``None``: as ``dropout``.
        cache_gb: memory for decoded training records kept between epochs (:class:`RecordDataset`); 0: none.
        init: a checkpoint whose weights the network starts from (fine-tuning, e.g. the shipped model on real
            ARKitFace data); the optimizer, learning-rate schedule and step count start afresh. Its
            architecture must match the preset's and its topology the data's. Ignored when resuming from
            ``out/last.pt``.
    """

    data: Path
    out: Path
    preset: str = "lite"
    iterations: int = 6000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 200
    seed: int = 0
    ckpt_every: int = 250
    log_every: int = 25
    workers: int = 1
    threads: int = 2
    device: str = "cpu"
    bf16: bool = False
    dropout: float | None = None
    uv_dropout: float | None = None
    cache_gb: float = 0.0
    init: Path | None = None

    def __post_init__(self) -> None:
        for name in ("data", "out", "init"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        check_choice("preset", self.preset, PRESETS)
        for name in ("iterations", "batch_size", "ckpt_every", "log_every", "threads"):
            check_int(name, getattr(self, name), 1)
        for name in ("warmup", "workers", "seed"):
            check_int(name, getattr(self, name), 0)
        check_range("lr", self.lr, 0.0, lo_open=True)
        check_range("weight_decay", self.weight_decay, 0.0)
        check_range("cache_gb", self.cache_gb, 0.0)
        check_device("device", self.device)
        for name in ("dropout", "uv_dropout"):
            if getattr(self, name) is not None:
                check_range(name, getattr(self, name), 0.0, 1.0, hi_open=True)


class RecordDataset(torch.utils.data.Dataset):
    """Records of an ARKitFace-layout folder turned into training examples with online augmentation."""

    def __init__(self, records: ArkitLayoutDataset, builder: TargetBuilder, augment: bool = True,
                 cache_gb: float = 0.0):
        """``cache_gb``: keep decoded records, trimmed to what their crops can read
        (:meth:`TargetBuilder.trim`), until they fill this many GB, so later epochs skip reading and
        decoding them; each data-loading process keeps its own."""
        check_range("cache_gb", cache_gb, 0.0)
        self.records = records
        self.builder = builder
        self.augment = augment
        self.cache_bytes = cache_gb * 1e9
        self.cache: dict[int, FaceRecord] = {}
        self.cached_bytes = 0

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        # torch seeds each worker from the run's seed, so this stream is reproducible for a fixed seed
        rng = np.random.default_rng(int(torch.randint(2 ** 62, (1,)))) if self.augment else None
        record = self.cache.get(i)
        if record is None:
            record = self._load(i)
        if rng is not None:
            rng.random()  # one draw per example, unused, so that a seed still gives the shipped checkpoints' stream
        return self.builder(record, rng)

    def _load(self, i: int) -> FaceRecord:
        # decoded as small as leaves the crop unchanged (most of a training step's reading time is decoding)
        record = self.records.load(i, self.builder.decode_reduction)
        if self.cache_bytes > 0:
            record = self.builder.trim(record)
            if self.cached_bytes + record.image_rgb.nbytes <= self.cache_bytes:
                self.cache[i] = record
                self.cached_bytes += record.image_rgb.nbytes
        return record


def _targets(batch: dict[str, torch.Tensor], device) -> LossTargets:
    return LossTargets(uv_map=batch["uv_map"].to(device), uv_weight=batch["uv_weight"].to(device),
                       seg=batch["seg"].to(device), corr_vert_ids=batch["corr_vert_ids"].to(device),
                       corr_bary=batch["corr_bary"].to(device), points=batch["points"].to(device))


def _lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 2% at the last iteration."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(cfg.iterations - cfg.warmup, 1)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(p, 1.0)))


def scheduled_batches(loader, opt: torch.optim.Optimizer, cfg: TrainConfig, step: int):
    """Yield ``(step, batch)`` from ``step`` up to ``cfg.iterations``, cycling over ``loader`` (epochs), with
    the optimizer's learning rate set for each step."""
    while step < cfg.iterations:
        for batch in loader:
            if step >= cfg.iterations:
                return
            for g in opt.param_groups:
                g["lr"] = cfg.lr * _lr_factor(step, cfg)
            yield step, batch
            step += 1


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 natively (CUDA with bf16, or a CPU with oneDNN's bf16 kernels)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _start_from(model: PerspNet, path: Path, topology) -> None:
    """Copy the weights of checkpoint ``path`` into ``model``; ValueError naming the file when they do not fit."""
    try:
        start, start_topology, _, _ = load_checkpoint(path)
    except CheckpointError as e:
        raise ValueError(f"--init {e}") from None
    if not (np.array_equal(start_topology.triangles, topology.triangles)
            and np.allclose(start_topology.uvs, topology.uvs, atol=1e-6)):
        raise ValueError(f"--init {path}: its mesh topology ({start_topology.name}) is not the data's ({topology.name})")
    try:
        model.load_state_dict(start.state_dict())
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0][:200]
        raise ValueError(f"--init {path}: its architecture does not match these settings ({first})") from None
    print(f"starting from the weights of {path}")


def train(cfg: TrainConfig) -> Path:
    """Train (or resume from ``out/last.pt``) and return the path of the final checkpoint ``out/final.pt``."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    records = ArkitLayoutDataset(cfg.data)
    model_cfg = getattr(presets, cfg.preset)()
    overrides = {"dropout": cfg.dropout, "uv_dropout": cfg.uv_dropout}
    model_cfg = dataclasses.replace(model_cfg, **{k: v for k, v in overrides.items() if v is not None})
    crop = CropConfig()
    builder = TargetBuilder(records.topology, model_cfg, crop)
    device = pick_device(cfg.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"  # fixed input sizes: let cuDNN pick its fastest kernels
    if cfg.bf16 and not bf16_supported(device):
        raise ValueError(f"bf16: {device} has no native bfloat16 support (it would be emulated, slower than float32); "
                         "train without bf16")
    model = PerspNet(model_cfg, records.topology.uvs).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step = 0
    last = out / "last.pt"
    if last.exists():
        model_loaded, _, _, payload = load_checkpoint(last, device)
        model.load_state_dict(model_loaded.state_dict())
        opt.load_state_dict(payload["optimizer"])
        step = int(payload["step"])
        torch.set_rng_state(payload["torch_rng"])
        print(f"resuming {last} at step {step}")
    elif cfg.init is not None:
        _start_from(model, Path(cfg.init), records.topology)
    uv_weight = torch.from_numpy(builder.uv_weight)
    loader = torch.utils.data.DataLoader(
        RecordDataset(records, builder, cache_gb=cfg.cache_gb), batch_size=cfg.batch_size, shuffle=True,
        drop_last=True, num_workers=cfg.workers, collate_fn=collate, persistent_workers=cfg.workers > 0)
    log_path = out / "train_log.csv"
    new_log = not log_path.exists() or step == 0
    # a resumed run appends under its log's own header (a log begun before a column was added keeps its columns)
    header = LOG_FIELDS
    if not new_log:
        with open(log_path, newline="") as f:
            header = tuple(next(csv.reader(f), LOG_FIELDS))
    log_file = open(log_path, "w" if new_log else "a", newline="")
    writer = csv.DictWriter(log_file, header, extrasaction="ignore")
    if new_log:
        writer.writeheader()
    extra = lambda: {"optimizer": opt.state_dict(), "step": step, "torch_rng": torch.get_rng_state(),  # noqa: E731
                     "train_config": {k: str(v) for k, v in dataclasses.asdict(cfg).items()}}
    model.train()
    t0 = time.time()
    running: dict[str, float] = {}
    with tqdm(total=cfg.iterations, initial=step, desc=f"train {cfg.preset}", unit="it") as bar:
        for step, batch in scheduled_batches(loader, opt, cfg, step):
            batch["uv_weight"] = uv_weight
            images = model_cfg.normalize_images(batch["image"].to(device))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                outputs = model(images, batch["choose"].to(device))
            outputs = {k: v.float() for k, v in outputs.items()}
            terms = perspnet_loss(outputs, _targets(batch, device), model_cfg.loss)
            opt.zero_grad(set_to_none=True)
            terms.total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            step += 1
            for k, v in terms.as_floats().items():
                running[k] = running.get(k, 0.0) + v
            bar.update(1)
            if step % cfg.log_every == 0:
                row = {k: running.get(k, 0.0) / cfg.log_every for k in LOG_FIELDS if k in running}
                writer.writerow({"step": step, **row, "lr": opt.param_groups[0]["lr"],
                                 "seconds": round(time.time() - t0, 1)})
                log_file.flush()
                bar.set_postfix(loss=f"{row['total']:.4f}", corr_mm=f"{row['corr'] * 100:.1f}",
                                rot_deg=f"{np.degrees(row['rotation']):.2f}")
                running = {}
            if step % cfg.ckpt_every == 0 or step == cfg.iterations:
                save_checkpoint(last, model, records.topology, crop, extra())
                plot_curves(log_path, out / "training_curves.png")
    log_file.close()
    final = out / "final.pt"
    save_checkpoint(final, model, records.topology, crop, {"step": step}, half=True)
    plot_curves(log_path, out / "training_curves.png")
    return final


def plot_curves(log_path: Path, png_path: Path) -> None:
    """Training curves (each loss term against the step, log scale) as a PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from baseio.atomic import atomic_path

    log = pd.read_csv(log_path) if log_path.stat().st_size > len(",".join(LOG_FIELDS)) + 1 else None
    if log is None or log.empty:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for k in ("total", "shape", "corr", "kl", "seg", "rotation"):
        if k in log:
            axes[0].plot(log["step"], log[k], label=k)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("step")
    axes[0].set_title("loss terms (unweighted; 3D terms in network units, 1 = 0.1 m)")
    axes[0].legend()
    axes[1].plot(log["step"], log["corr"] * 100, label="L_corr (mm, |dx|+|dy|+|dz|)")
    axes[1].plot(log["step"], log["shape"] * 100, label="L_S (mm, |dx|+|dy|+|dz|)")
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("mm")
    axes[1].set_yscale("log")
    axes[1].legend()
    axes[1].set_title("3D errors")
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
