"""The style library: famous paintings to paint with and example photos to try, chosen by id.

The built-in library is library/ at the project root: library.json (the manifest), the images,
PROVENANCE.md and SHA256SUMS. An operator adds their own with ATELIER_STYLE_LIBRARY_DIR: a directory
holding its own library.json in the same format, whose entries come after the built-in ones.

    library = get_library()                   # loaded and checked once per process (cached)
    painting = library.style("hokusai-great-wave")   # UnknownLibraryImage (a KeyError) if there is none
    painting.stored().png         # the PNG a job stores, as an upload's would be
    painting.credit()             # "The Great Wave off Kanagawa, Katsushika Hokusai, c. 1831"

Every image goes through spec/decode.py's checks at start, the same decoding and hardening as an
upload (bounded in pixels, converted to RGB at the largest side a job can use), and its thumbnail is
made once, here; its metadata-free PNG is encoded when a job first uses it. A manifest or an image
that cannot be used raises LibraryError, whose message is one line naming the file: the web refuses
to start with it (app/main.py).

Imports no FastAPI and no TensorFlow: the web and the command line (worker/cli.py) both read it.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from core.settings import Settings, get_settings
from spec.decode import CleanImage, UploadRejected, clean_image, clean_rgb, stored_longest_side

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "library"
MANIFEST_NAME = "library.json"
# Longest side of a thumbnail: sharp at twice the gallery's ~110 CSS px on high-density screens.
THUMBNAIL_SIDE = 240
THUMBNAIL_QUALITY = 82
# Ids are URL path segments and form values: lower-case words joined by hyphens.
ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
ID_MAX_LENGTH = 64

Kind = Literal["style", "photo"]
# The fields of each kind's manifest entries (all strings, all required, no others).
FIELDS: dict[Kind, tuple[str, ...]] = {
    "style": ("id", "title", "artist", "year", "licence", "source", "file"),
    "photo": ("id", "title", "credit", "licence", "source", "file"),
}
SECTIONS: dict[str, Kind] = {"styles": "style", "photos": "photo"}


class LibraryError(ValueError):
    """A manifest or an image of the library that cannot be used; the message names the file."""


class UnknownLibraryImage(KeyError):
    """No painting or photo of that id in the library."""

    def __init__(self, kind: Kind, image_id: str) -> None:
        super().__init__(image_id)
        self.kind = kind
        self.image_id = image_id

    def __str__(self) -> str:
        what = "painting" if self.kind == "style" else "example photo"
        return f"no {what} {self.image_id!r} in the library"


@dataclass(frozen=True)
class LibraryImage:
    """One painting (kind "style") or example photo (kind "photo") of the library.

    author: the painting's artist, or the photo's credit (photographer, agency); year: the painting's
    (a string: "c. 1831"), empty for a photo. width, height: the size a job gets it at; thumbnail: a
    JPEG; etag: a digest of the file and the thumbnail, for the HTTP caches. stored(): the PNG a job
    stores, as an upload's would be.
    """

    kind: Kind
    id: str
    title: str
    author: str
    year: str
    licence: str
    source: str
    path: Path
    width: int
    height: int
    thumbnail: bytes
    etag: str
    # The file's bytes as checked at start (a few hundred KB) and how to clean them again: the PNG is
    # encoded when a job first needs it (encoding is 80% of a check's time), from these same bytes.
    data: bytes = field(repr=False)
    clean_options: dict[str, Any] = field(repr=False)
    _stored: list[CleanImage] = field(default_factory=list, repr=False, compare=False)

    def stored(self) -> CleanImage:
        """The image as a job stores it (the PNG of spec/decode.py's clean_image), made once."""
        if not self._stored:
            self._stored.append(clean_image(self.data, **self.clean_options))
        return self._stored[0]

    def credit(self) -> str:
        """One line for people: "The Scream, Edvard Munch, 1893" or "Chelsea the cat, photo: ..."."""
        if self.kind == "style":
            return f"{self.title}, {self.author}, {self.year}"
        return f"{self.title}, photo: {self.author} ({self.licence})"

    def record(self) -> dict[str, str]:
        """What a job's record keeps of it (the job page and status JSON show it)."""
        fields = {"id": self.id, "title": self.title, "licence": self.licence}
        if self.kind == "style":
            return {**fields, "artist": self.author, "year": self.year}
        return {**fields, "credit": self.author}


@dataclass(frozen=True)
class Library:
    """The paintings and the example photos, each in manifest order (built-in first)."""

    styles: dict[str, LibraryImage]
    photos: dict[str, LibraryImage]

    def style(self, style_id: str) -> LibraryImage:
        try:
            return self.styles[style_id]
        except KeyError:
            raise UnknownLibraryImage("style", style_id) from None

    def photo(self, photo_id: str) -> LibraryImage:
        try:
            return self.photos[photo_id]
        except KeyError:
            raise UnknownLibraryImage("photo", photo_id) from None


# Libraries loaded in this process, by everything they depend on: a library is the same as long as
# its directories and the limits are (an operator restarts the web to change it). A dict rather than
# an lru_cache, so a test that re-reads the settings does not decode the images again.
_LOADED: dict[tuple[Any, ...], Library] = {}


@lru_cache
def get_library() -> Library:
    """The library of the process's settings (ATELIER_STYLE_LIBRARY_DIR, the size and pixel limits)."""
    return load_library(get_settings())


def load_library(settings: Settings) -> Library:
    """The built-in library and the operator's (settings.style_library_dir), every image decoded and
    checked; raises LibraryError naming the file at fault."""
    key = (
        tuple(str(directory) for directory in library_dirs(settings)),
        settings.max_size,
        settings.max_upload_pixels,
        settings.min_image_side,
    )
    if key not in _LOADED:
        styles: dict[str, LibraryImage] = {}
        photos: dict[str, LibraryImage] = {}
        for entry in library_entries(settings):
            (styles if entry.kind == "style" else photos)[entry.id] = load_entry(entry, settings)
        _LOADED[key] = Library(styles=styles, photos=photos)
    return _LOADED[key]


def library_dirs(settings: Settings) -> list[Path]:
    """The built-in library's directory, then the operator's (ATELIER_STYLE_LIBRARY_DIR) if any."""
    return [BUILTIN_DIR] + ([Path(settings.style_library_dir)] if settings.style_library_dir else [])


def library_entries(settings: Settings) -> list[LibraryEntry]:
    """Every manifest entry of the library, checked (fields, ids, files inside their directory, no id
    twice), nothing decoded yet: what the command line lists (`atelier styles`)."""
    entries: list[LibraryEntry] = []
    seen: set[tuple[Kind, str]] = set()
    for directory in library_dirs(settings):
        manifest = directory / MANIFEST_NAME
        for entry in _read_manifest(manifest):
            if (entry.kind, entry.id) in seen:
                raise LibraryError(f"{manifest}: the id {entry.id!r} is already in the library")
            seen.add((entry.kind, entry.id))
            entries.append(entry)
    return entries


def find_entry(settings: Settings, kind: Kind, image_id: str) -> LibraryEntry:
    """The manifest entry of that kind and id; UnknownLibraryImage when there is none."""
    for entry in library_entries(settings):
        if entry.kind == kind and entry.id == image_id:
            return entry
    raise UnknownLibraryImage(kind, image_id)


def load_entry(entry: LibraryEntry, settings: Settings) -> LibraryImage:
    """One entry's image decoded and checked as an upload is, with its thumbnail."""
    # The operator's images are bounded as uploads are (ATELIER_MAX_UPLOAD_PIXELS,
    # ATELIER_MIN_IMAGE_SIDE); the shipped ones, checksummed in SHA256SUMS, by the defaults, so a
    # server that takes only small uploads still has its library.
    bounds = BUILTIN_BOUNDS if entry.path.is_relative_to(BUILTIN_DIR) else _bounds(settings)
    return _load_image(entry, settings.max_size, bounds)


@dataclass(frozen=True)
class LibraryEntry:
    """A manifest's entry, checked: its kind, id, text fields (as in the manifest) and file."""

    kind: Kind
    id: str
    fields: dict[str, str]
    path: Path


def _read_manifest(manifest: Path) -> list[LibraryEntry]:
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LibraryError(f"{manifest}: no such file (a library directory needs its manifest)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise LibraryError(f"{manifest}: cannot be read ({error})") from error
    except json.JSONDecodeError as error:
        raise LibraryError(f"{manifest}: not valid JSON ({error})") from error
    if not isinstance(data, dict) or not data or set(data) - set(SECTIONS):
        raise LibraryError(f"{manifest}: must be a JSON object with a 'styles' and/or a 'photos' list")
    entries = []
    for section, kind in SECTIONS.items():
        items = data.get(section, [])
        if not isinstance(items, list):
            raise LibraryError(f"{manifest}: '{section}' must be a list")
        for index, item in enumerate(items):
            entries.append(_entry(manifest, f"{section}[{index}]", kind, item))
    return entries


def _entry(manifest: Path, where: str, kind: Kind, item: Any) -> LibraryEntry:
    expected = FIELDS[kind]
    if not isinstance(item, dict):
        raise LibraryError(f"{manifest}: {where} must be an object with {', '.join(expected)}")
    missing = [name for name in expected if not isinstance(item.get(name), str) or not item[name].strip()]
    if missing:
        raise LibraryError(f"{manifest}: {where} needs a non-empty text {', '.join(missing)}")
    unknown = sorted(set(item) - set(expected))
    if unknown:
        raise LibraryError(f"{manifest}: {where} has unknown field(s) {', '.join(unknown)}")
    image_id = item["id"]
    if len(image_id) > ID_MAX_LENGTH or not ID_PATTERN.match(image_id):
        raise LibraryError(
            f"{manifest}: {where}: the id {image_id!r} must be lower-case letters and digits joined "
            f"by hyphens, at most {ID_MAX_LENGTH} characters"
        )
    directory = manifest.parent.resolve()
    path = (directory / item["file"]).resolve()
    if not path.is_relative_to(directory):  # also refuses an absolute path elsewhere
        raise LibraryError(f"{manifest}: {where}: the file {item['file']!r} is outside {directory}")
    fields = {name: item[name].strip() for name in expected}
    return LibraryEntry(kind, image_id, fields, path)


def _bounds(settings: Settings) -> dict[str, int]:
    return {"max_pixels": settings.max_upload_pixels, "min_side": settings.min_image_side}


BUILTIN_BOUNDS = {
    "max_pixels": Settings.model_fields["max_upload_pixels"].default,
    "min_side": Settings.model_fields["min_image_side"].default,
}


def _load_image(entry: LibraryEntry, max_size: int, bounds: dict[str, int]) -> LibraryImage:
    longest = stored_longest_side("style" if entry.kind == "style" else "content", max_size)
    options = {"longest": longest, **bounds}
    try:
        data = entry.path.read_bytes()
        rgb = clean_rgb(data, **options)  # every check of clean_image; the PNG comes when needed
    except OSError as error:
        raise LibraryError(f"{entry.path}: cannot be read ({error.strerror or error})") from error
    except UploadRejected as error:
        raise LibraryError(f"{entry.path}: {error.detail}") from error
    thumbnail = make_thumbnail(rgb)
    fields = entry.fields
    return LibraryImage(
        kind=entry.kind,
        id=entry.id,
        title=fields["title"],
        author=fields["artist"] if entry.kind == "style" else fields["credit"],
        year=fields.get("year", ""),
        licence=fields["licence"],
        source=fields["source"],
        path=entry.path,
        width=rgb.width,
        height=rgb.height,
        thumbnail=thumbnail,
        etag=hashlib.sha256(data + thumbnail).hexdigest()[:20],
        data=data,
        clean_options=options,
    )


def make_thumbnail(rgb: Image.Image) -> bytes:
    """A JPEG of the image at most THUMBNAIL_SIDE px on its longest side."""
    small = rgb.copy()
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return buffer.getvalue()
