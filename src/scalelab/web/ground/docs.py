"""The documents grounded answers cite: read a folder or a world, and cut every document into passages.

A document keeps its full text and an id a citation can name (`notes/a.md`, `data.jsonl:12`,
`world/train/431`); a passage is a run of consecutive sentences of one document, given by its character span,
so a citation points at exact characters of the original text. World documents also keep their concept spans
(`relation:home_town`, ...), which is what lets the evaluation check that a cited sentence states a fact.

Folders hold `.txt`, `.md` (read as text), `.html` (visible text only: scripts and styles dropped) and `.jsonl`
(one document per line with a `text` field, optional `title`). Symbolic links are not followed out of the folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from scalelab.errors import InputError, MissingInput
from scalelab.world.reader import SPLITS, WorldDir

SUFFIXES = (".txt", ".md", ".jsonl", ".html")
WORLD_GENRES = ("encyclopedia", "story")  # the genres that state facts in prose
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str
    source: str  # the file (relative to the folder) or world split it came from
    spans: tuple[tuple[int, int, str], ...] = field(default=(), repr=False)  # concept spans (world documents)


@dataclass(frozen=True)
class Passage:
    doc: int  # index into the document list
    index: int  # the passage's number within its document
    start: int  # character span in the document's text
    end: int


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences (and lines) of `text`, whitespace trimmed."""
    spans, start = [], 0
    for m in [*_SENTENCE_END.finditer(text), None]:
        end = m.start() if m else len(text)
        chunk = text[start:end]
        lead = len(chunk) - len(chunk.lstrip())
        if chunk.strip():
            spans.append((start + lead, start + len(chunk.rstrip())))
        start = m.end() if m else len(text)
    return spans


def split_passages(docs: list[Document], max_sentences: int = 3) -> list[Passage]:
    """Consecutive runs of up to `max_sentences` sentences, document by document."""
    if max_sentences < 1:
        raise InputError(f"max_sentences must be >= 1, got {max_sentences}")
    out = []
    for d, doc in enumerate(docs):
        sents = sentence_spans(doc.text)
        for i in range(0, len(sents), max_sentences):
            group = sents[i:i + max_sentences]
            out.append(Passage(d, i // max_sentences, group[0][0], group[-1][1]))
    return out


class _VisibleText(HTMLParser):
    """The text a browser would show: data outside <script>/<style>, block tags as line breaks."""

    _HIDDEN = frozenset({"script", "style", "template", "noscript"})
    _BLOCK = frozenset({"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section", "article"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._hidden = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._hidden += tag in self._HIDDEN
        self._in_title = self._in_title or tag == "title"
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in self._HIDDEN and self._hidden > 0
        self._in_title = self._in_title and tag != "title"

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._hidden:
            self.parts.append(data)


def html_text(markup: str) -> tuple[str, str]:
    """(title, visible text) of an HTML page."""
    parser = _VisibleText()
    parser.feed(markup)
    parser.close()
    text = re.sub(r"[ \t]+", " ", "".join(parser.parts))
    return parser.title.strip(), re.sub(r"\n\s*\n+", "\n\n", text).strip()


def _first_line(text: str, limit: int = 80) -> str:
    line = text.strip().split("\n", 1)[0].strip(" =#")
    return line if len(line) <= limit else line[:limit - 1] + "…"


def _files(root: Path) -> Iterator[Path]:
    resolved = root.resolve()
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in SUFFIXES and path.is_file() and path.resolve().is_relative_to(resolved):
            yield path


def read_folder(root: Path | str) -> list[Document]:
    """Every document of a folder (recursively), in path order."""
    root = Path(root)
    if not root.is_dir():
        raise MissingInput(f"document folder {root} does not exist; pass --docs with a folder of "
                           f"{', '.join(SUFFIXES)} files")
    docs: list[Document] = []
    for path in _files(root):
        rel = path.relative_to(root).as_posix()
        raw = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix.lower() == ".jsonl":
            docs += _jsonl_docs(raw, rel)
        elif path.suffix.lower() == ".html":
            title, text = html_text(raw)
            docs.append(Document(rel, title or rel, text, rel))
        else:
            docs.append(Document(rel, _first_line(raw) or rel, raw, rel))
    return [d for d in docs if d.text.strip()]


def _jsonl_docs(raw: str, rel: str) -> list[Document]:
    out = []
    for lineno, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{rel} line {lineno} is not valid JSON ({err.msg}); fix or remove the line") from err
        text = obj.get("text") if isinstance(obj, dict) else None
        if not isinstance(text, str):
            raise InputError(f"{rel} line {lineno} has no string \"text\" field; each line must be "
                             '{"text": ..., "title": ...}')
        out.append(Document(f"{rel}:{lineno}", str(obj.get("title") or _first_line(text)), text, rel))
    return out


def read_world(world_dir: Path | str, genres: tuple[str, ...] = WORLD_GENRES) -> list[Document]:
    """The world's prose documents (both splits), with their concept spans."""
    world = WorldDir(Path(world_dir))
    docs = []
    for split in SPLITS:
        for rec in world.records(split):
            if rec.get("genre") in genres:
                spans = tuple((int(a), int(b), str(c)) for a, b, c in rec.get("spans") or ())
                docs.append(Document(f"world/{split}/{rec['id']}", _first_line(rec["text"]), rec["text"],
                                     f"world/{split}.jsonl", spans))
    if not docs:
        raise InputError(f"{world_dir} has no {' or '.join(genres)} documents to answer from")
    return docs


def read_documents(path: Path | str) -> list[Document]:
    """A world folder's prose, or any folder of documents."""
    return read_world(path) if WorldDir.is_world(path) else read_folder(path)
