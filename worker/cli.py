"""``atelier``: stylize images from the command line, and fetch the VGG19 ImageNet weights.

    atelier stylize content.jpg style.jpg -o out.png --size 512 --iterations 500
    atelier stylize clip.mp4 style.jpg -o out.mp4 --fps 12   # a video, frame by frame (docs/video.md)
    atelier stylize content.jpg --style-id van-gogh-starry-night -o out.png
    atelier styles                       # the style library: the ids --style-id takes
    atelier fetch-weights --model-dir data/models
    atelier submit --server http://127.0.0.1:8000 content.jpg style.jpg --wait -o out.png  (worker/submit.py)

Inputs and options are checked before TensorFlow is imported, so mistakes fail in a fraction of a
second with one line on stderr (exit 2 for usage, 1 for unusable files or weights).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before anything imports TensorFlow

import argparse
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from spec.errors import EngineError, ImageError, OptionsError
from spec.options import PRECISIONS, OptionSpec, StyleOptions, option_specs
from spec.plan import Limits, MaskInput, plan_video
from worker.engine.hooks import Hooks, Progress, RunImages
from worker.engine.images import is_black, load_image, output_format, save_image
from worker.submit import ClientError, add_submit_command, run_submit

logger = logging.getLogger("atelier")

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (the full usage stays in --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="atelier", description="Neural style transfer (Gatys et al.) with VGG19.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stylize = commands.add_parser(
        "stylize", help="render CONTENT (an image, or a video: MP4, WebM, MOV, GIF) in the style of STYLE(s)"
    )
    stylize.add_argument("content", type=Path, metavar="CONTENT")
    stylize.add_argument(
        "styles", type=Path, nargs="*", metavar="STYLE",
        help="style image files; with --style-id, none or more",
    )  # fmt: skip
    stylize.add_argument(
        "--style-id", dest="style_ids", action="append", default=[], metavar="ID",
        help="a painting of the style library (`atelier styles` lists them); repeatable. The styles are "
        "the STYLE files first, then the --style-id paintings, each in the order given: --style-blend "
        "and --mask follow that order",
    )  # fmt: skip
    stylize.add_argument(
        "-o", "--output", type=Path, required=True,
        help="output file, .png or .jpg; for a video .mp4 (H.264) or .webm (VP9)",
    )  # fmt: skip
    stylize.add_argument(
        "--mask", dest="masks", action="append", metavar="PATH",
        help="greyscale mask of a style image, white where that style goes (black: the content kept); "
        "give it once per style image, in their order ('none' for a style without one)",
    )  # fmt: skip
    for spec in option_specs():
        _add_option_flag(stylize, spec)
    stylize.add_argument("--weights", help="imagenet, random or a weights file (default: ATELIER_WEIGHTS)")
    stylize.add_argument(
        "--model-dir", type=Path, help="ImageNet weights directory (default: ATELIER_MODEL_DIR)"
    )
    stylize.add_argument(
        "--precision",
        choices=("auto", *PRECISIONS),
        help="convolutions' dtype; auto: bfloat16 where the device has it (default: ATELIER_PRECISION)",
    )
    stylize.add_argument(
        "--xla", choices=("auto", "on", "off"), help="XLA-compile the steps (default: ATELIER_XLA)"
    )
    stylize.add_argument(
        "--max-tile",
        type=_non_negative,
        metavar="SIDE",
        help="optimise images larger than SIDE x SIDE pixels by exact tiles of that size (the same "
        "picture in bounded memory); 0: never tile (default: ATELIER_MAX_TILE_PIXELS, else 1024 on "
        "CPU, 2048 on a GPU)",
    )
    stylize.add_argument("--json", action="store_true", help="print one JSON summary on stdout at the end")

    styles = commands.add_parser(
        "styles", help="list the style library's paintings (built-in and ATELIER_STYLE_LIBRARY_DIR's)"
    )
    styles.add_argument("--json", action="store_true", help="one JSON list on stdout")
    add_submit_command(commands, _add_option_flag)

    fetch = commands.add_parser("fetch-weights", help="download and verify the VGG19 ImageNet weights")
    fetch.add_argument("--model-dir", type=Path, help="default: ATELIER_MODEL_DIR")
    return parser


def _add_option_flag(parser: argparse.ArgumentParser, spec: OptionSpec) -> None:
    """One engine option as a flag: type, choices and help (with the default) from the option schema."""
    saved_as = " Each preview is saved as OUT_<step>." if spec.public == "preview_every" else ""
    help_text = f"{spec.help}{saved_as} (default: {spec.describe_default()})".replace("%", "%%")
    if spec.kind == "bool":
        parser.add_argument(spec.flag, dest=spec.name, action="store_true", default=None, help=help_text)
        return
    kinds: dict[str, dict[str, Any]] = {
        "int": {"type": int, "metavar": "N"},
        "float": {"type": float, "metavar": "X"},
        "choice": {"choices": spec.choices},
        "floats": {"type": _numbers, "metavar": "X,X,..."},
        "names": {"type": _names, "metavar": "LAYER,..."},
    }
    parser.add_argument(spec.flag, dest=spec.name, help=help_text, **kinds[spec.kind])


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def _numbers(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="atelier: %(levelname)s: %(message)s"
    )
    try:
        if args.command == "fetch-weights":
            return _fetch_weights(args)
        if args.command == "styles":
            return _list_styles(args)
        if args.command == "submit":
            return run_submit(args)
        return _stylize(args)
    except OptionsError as error:
        return _fail(EXIT_USAGE, error)
    except (EngineError, OSError, ClientError) as error:
        return _fail(EXIT_FAILURE, error)


def _fail(code: int, error: Exception) -> int:
    message = " ".join(str(error).split())  # exactly one line, whatever the message holds
    sys.stderr.write(f"atelier: error: {message}\n")
    return code


def _stylize(args: argparse.Namespace) -> int:
    given = {spec.name: getattr(args, spec.name) for spec in option_specs()}
    options = StyleOptions(**{name: value for name, value in given.items() if value is not None})
    if _is_video(args.content):
        return _stylize_video(args, options)
    output_format(args.output)  # refuse an unsupported extension before hours of work
    if not args.output.parent.is_dir():
        raise ImageError(f"{args.output.parent} does not exist; create it or choose another output path")
    if not args.styles and not args.style_ids:
        raise OptionsError("give at least one STYLE file or --style-id (`atelier styles` lists the library)")
    images = RunImages(
        content=load_image(args.content),
        styles=[load_image(path) for path in args.styles] + [_library_style(i) for i in args.style_ids],
        masks=_load_masks(args.masks),
    )
    # The plan's refusals do not depend on the tiles, whose default needs TensorFlow (a GPU or not):
    # refuse now, in a fraction of a second, and plan with the tiles once TensorFlow is loaded.
    images.plan(options).check()
    weights, model_dir, weights_seed = _model_settings(args)
    precision, xla, max_tile_pixels = _compute_settings(args)

    with _native_stderr_silenced():  # TensorFlow's C++ start-up banner ignores TF_CPP_MIN_LOG_LEVEL
        from worker.engine.model import load_extractor
        from worker.engine.optimize import stylize
        from worker.engine.tiling import resolve_tile_pixels

    plan = images.plan(options, Limits(max_tile_pixels=resolve_tile_pixels(max_tile_pixels)))
    for note in plan.notes:
        logger.warning("%s", note)

    extractor = load_extractor(
        weights, model_dir, seed=weights_seed, content_layers=options.content_layers,
        style_layers=options.style_layers, precision=precision,
        jit_compile={"on": True, "off": False}.get(xla),  # auto: on with a GPU only
    )  # fmt: skip
    stop = _StopOnInterrupt()
    with _progress_bar(options.iterations) as bar:

        def on_progress(progress: Progress) -> None:
            if bar is not None:
                bar.update(progress.step - bar.n)
                bar.set_postfix(loss=f"{progress.loss['total']:.4g}", refresh=False)

        def on_preview(step: int, image: Any) -> None:
            save_image(image, args.output.with_name(f"{args.output.stem}_{step:04d}{args.output.suffix}"))

        result = stylize(plan, images, extractor, Hooks(on_progress, on_preview, should_stop=stop))
    save_image(result.image, args.output)
    height, width = result.image.shape[:2]
    if args.json:
        summary = {
            "output": str(args.output),
            "width": width,
            "height": height,
            "iterations": result.steps,
            "seconds": round(result.seconds, 3),
            "loss": {"initial": result.loss_initial, "final": result.loss_final},
        }
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        sys.stdout.write(
            f"wrote {args.output} ({width}x{height}, {result.steps} steps, {result.seconds:.1f} s)\n"
        )
    if result.stopped:
        sys.stderr.write(f"atelier: interrupted after {result.steps} steps; the partial image was saved\n")
        return EXIT_INTERRUPTED
    return 0


def _is_video(path: Path) -> bool:
    """A video by its name; a .gif only when it has more than one frame (else it is an image)."""
    from core.media import is_video_name

    if path.suffix.lower() != ".gif":
        return is_video_name(path.name)
    from PIL import Image

    try:
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1) > 1
    except OSError:
        return False


def _stylize_video(args: argparse.Namespace, options: StyleOptions) -> int:
    """CONTENT is a clip: probe it, stylise its frames in order (worker/engine/video.py), encode the
    result with the source's audio; Ctrl-C keeps the frames finished so far."""
    from core.media import VideoLimits, decode_frames, encode_video, encoding, probe
    from spec.decode import UploadRejected

    suffix = args.output.suffix.lower()
    if suffix not in (".mp4", ".webm"):
        raise ImageError(f"a video's output must be .mp4 or .webm, not {args.output.name}")
    kind = encoding(suffix)
    if kind.suffix != suffix:
        raise ImageError("this PyAV build has no H.264 encoder (libx264 or OpenH264): write a .webm instead")
    if not args.output.parent.is_dir():
        raise ImageError(f"{args.output.parent} does not exist; create it or choose another output path")
    if not args.styles and not args.style_ids:
        raise OptionsError("give at least one STYLE file or --style-id (`atelier styles` lists the library)")
    settings = _settings()
    limits = VideoLimits(settings.max_video_seconds, settings.max_video_frames, settings.max_upload_pixels)
    try:
        info = probe(args.content, options.fps, limits)
    except UploadRejected as error:
        raise ImageError(f"{args.content}: {error.detail}") from error
    styles = [load_image(path) for path in args.styles] + [_library_style(i) for i in args.style_ids]
    masks = _load_masks(args.masks)
    mask_inputs = [None if m is None else MaskInput(*m.shape[:2], black=is_black(m)) for m in masks or ()]
    plan = plan_video(
        (info.height, info.width), [s.shape[:2] for s in styles], options, info.frames, info.fps,
        masks=mask_inputs,
    ).check()  # fmt: skip
    weights, model_dir, weights_seed = _model_settings(args)
    precision, xla, _ = _compute_settings(args)
    with _native_stderr_silenced():
        from worker.engine.model import load_extractor
        from worker.engine.video import VideoHooks, stylize_video
    for note in plan.first.notes:
        logger.warning("%s", note)
    extractor = load_extractor(
        weights, model_dir, seed=weights_seed, content_layers=options.content_layers,
        style_layers=options.style_layers, precision=precision,
        jit_compile={"on": True, "off": False}.get(xla),
    )  # fmt: skip
    stop = _StopOnInterrupt()
    with _progress_bar(plan.total_steps()) as bar:

        def on_progress(frame: int, progress: Progress) -> None:
            if bar is not None:
                before = plan.first.steps + (frame - 2) * plan.later.steps if frame > 1 else 0
                bar.update(before + progress.step - bar.n)
                bar.set_postfix_str(plan.describe(frame, progress.step), refresh=False)

        result = stylize_video(
            plan, decode_frames(args.content, info.fps), styles, extractor,
            VideoHooks(on_progress=on_progress, should_stop=stop, label=str(args.content)), masks=masks,
        )  # fmt: skip
    if result.frames:
        encode_video(
            result.frames, info.fps, args.output, audio_from=args.content if info.has_audio else None
        )
    height, width = (result.frames[0].shape[:2]) if result.frames else (0, 0)
    summary = {
        "output": str(args.output), "width": width // 2 * 2, "height": height // 2 * 2,
        "frames": len(result.frames), "fps": info.fps, "codec": kind.codec, "audio": info.has_audio,
        "seconds": round(result.seconds, 3), "flow_seconds": round(result.flow_seconds, 3),
    }  # fmt: skip
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        sys.stdout.write(
            f"wrote {args.output} ({summary['width']}x{summary['height']}, {len(result.frames)} frames at "
            f"{info.fps:g} fps, {result.seconds:.1f} s)\n"
        )
    if result.stopped:
        sys.stderr.write(f"atelier: interrupted after {len(result.frames)} frame(s); those were saved\n")
        return EXIT_INTERRUPTED
    return 0


def _library_style(style_id: str) -> Any:
    """A painting of the style library, decoded and checked as the web checks it (core/library.py)."""
    from core.library import LibraryError, UnknownLibraryImage, find_entry, load_entry

    settings = _settings()
    try:
        painting = load_entry(find_entry(settings, "style", style_id), settings)
    except UnknownLibraryImage as error:
        raise OptionsError(f"--style-id: {error} (`atelier styles` lists them)") from error
    except LibraryError as error:
        raise ImageError(f"the style library cannot be used: {error}") from error
    logger.info("style %s: %s", style_id, painting.credit())
    return load_image(painting.stored().png)


def _list_styles(args: argparse.Namespace) -> int:
    """`atelier styles`: id, title, artist, year and licence of every painting, one a line."""
    from core.library import LibraryError, library_entries

    try:
        paintings = [entry for entry in library_entries(_settings()) if entry.kind == "style"]
    except LibraryError as error:
        raise ImageError(f"the style library cannot be used: {error}") from error
    fields = ("id", "title", "artist", "year", "licence")
    if args.json:
        rows = [{name: entry.fields[name] for name in (*fields, "source")} for entry in paintings]
        sys.stdout.write(json.dumps(rows) + "\n")
        return 0
    width = max((len(entry.id) for entry in paintings), default=2)
    for entry in paintings:
        title, artist, year, licence = (entry.fields[name] for name in fields[1:])
        sys.stdout.write(f"{entry.id:<{width}}  {title}, {artist}, {year} ({licence})\n")
    return 0


def _settings() -> Any:
    from core.settings import get_settings  # pydantic only; the engine itself never imports the core

    try:
        return get_settings()
    except ValueError as error:  # pydantic's ValidationError: a bad ATELIER_* variable
        raise OptionsError(f"invalid ATELIER_* settings: {error}") from error


def _load_masks(paths: list[str] | None) -> list[Any] | None:
    """--mask files, in the styles' order (None for 'none'); the run plan checks their number and shapes."""
    if not paths:
        return None
    return [None if path.lower() == "none" else load_image(Path(path)) for path in paths]


def _fetch_weights(args: argparse.Namespace) -> int:
    _, model_dir, _ = _model_settings(args)
    with _native_stderr_silenced():
        from worker.engine.model import fetch_weights
    sys.stdout.write(f"{fetch_weights(model_dir)}\n")
    return 0


def _model_settings(args: argparse.Namespace) -> tuple[str, Path, int]:
    """--weights / --model-dir, else ATELIER_WEIGHTS / ATELIER_MODEL_DIR / ATELIER_WEIGHTS_SEED."""
    settings = _settings()
    weights = getattr(args, "weights", None) or settings.weights
    return weights, args.model_dir or settings.model_dir, settings.weights_seed


def _compute_settings(args: argparse.Namespace) -> tuple[str, str, int | None]:
    """--precision / --xla / --max-tile, else ATELIER_PRECISION / ATELIER_XLA / ATELIER_MAX_TILE_PIXELS."""
    settings = _settings()
    tile = settings.max_tile_pixels if args.max_tile is None else args.max_tile * args.max_tile
    return args.precision or settings.precision, args.xla or settings.xla, tile


class _StopOnInterrupt:
    """The first Ctrl-C ends the run after the current step (the partial image is saved); a second kills."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __call__(self) -> bool:
        return self.requested


@contextlib.contextmanager
def _progress_bar(total: int) -> Iterator[Any]:
    """A tqdm bar (step, loss, ETA) on stderr when it is a terminal; None otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="step", file=sys.stderr, dynamic_ncols=True) as bar:
        yield bar


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null (C++ libraries write there directly), then restore it."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


if __name__ == "__main__":
    sys.exit(main())
