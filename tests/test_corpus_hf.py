"""`hf:` corpus sources through the `datasets` library, offline: save_to_disk folders, local data folders,
an unreachable hub, and `datasets` missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scalelab.data.corpus import CorpusError, read_documents, read_split

datasets = pytest.importorskip("datasets")


@pytest.fixture(autouse=True)
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep datasets' cache inside the test and make any hub request fail at once instead of retrying."""
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_save_to_disk_dataset(tmp_path: Path) -> None:
    ds = datasets.Dataset.from_dict({"text": ["a doc", "", "b doc 🐉"], "id": [1, 2, 3]})
    ds.save_to_disk(str(tmp_path / "saved"))
    assert list(read_documents(f"hf:{tmp_path / 'saved'}")) == ["a doc", "b doc 🐉"]


def test_save_to_disk_dataset_dict_picks_the_split(tmp_path: Path) -> None:
    ds = datasets.Dataset.from_dict({"text": ["t1", "t2"]})
    datasets.DatasetDict({"train": ds, "validation": ds.select([1])}).save_to_disk(str(tmp_path / "dd"))
    assert list(read_documents(f"hf:{tmp_path / 'dd'}:validation")) == ["t2"]
    with pytest.raises(CorpusError, match="no split 'test'"):
        list(read_documents(f"hf:{tmp_path / 'dd'}:test"))


def test_local_data_folder_through_load_dataset(tmp_path: Path) -> None:
    folder = tmp_path / "pq"
    folder.mkdir()
    pq.write_table(pa.table({"text": [f"row {i}" for i in range(20)]}), folder / "train.parquet")
    src = f"hf:{folder}"
    assert list(read_documents(src)) == [f"row {i}" for i in range(20)]
    assert list(read_split(src, "val", val_fraction=0.25)) == ["row 0", "row 4", "row 8", "row 12", "row 16"]


def test_missing_text_column(tmp_path: Path) -> None:
    datasets.Dataset.from_dict({"body": ["x"]}).save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(CorpusError, match=r"no \"text\" column \(columns: body\)"):
        list(read_documents(f"hf:{tmp_path / 'saved'}"))


def test_unreachable_hub_is_a_clear_error() -> None:
    with pytest.raises(CorpusError, match=r"could not open 'hf:no-such-org/no-such-dataset'.*network"):
        list(read_documents("hf:no-such-org/no-such-dataset"))


def test_datasets_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` raise ImportError
    with pytest.raises(CorpusError, match=r"needs the `datasets` package: pip install 'scalelab\[hub\]'"):
        list(read_documents("hf:anything"))
    with pytest.raises(CorpusError, match="names no dataset"):
        read_documents("hf:")
