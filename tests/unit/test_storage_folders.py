"""The driver's folder operations on a local disk (pipeline/storage/folders.py); tests/integration/
test_object_storage.py runs the same operations against an S3-protocol server."""

from __future__ import annotations

import pytest

from pipeline.errors import DataError
from pipeline.storage.folders import Storage, expand_braces


def _tree(root, *names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"header\n{name}\n")


def test_local_globs_name_files_as_spark_reads_them_and_skip_markers(tmp_path):
    _tree(tmp_path, "a/x.csv", "a/_SUCCESS", "a/.x.csv.crc", "b/y.csv", "c/z.json")
    storage = Storage()
    found = [f.path for f in storage.glob_files(f"{tmp_path}/{{a,b}}/*.csv")]
    assert found == [f"file:{tmp_path}/a/x.csv", f"file:{tmp_path}/b/y.csv"]
    assert [f.path for f in storage.glob_files(f"file:{tmp_path}/a")] == [f"file:{tmp_path}/a/x.csv"]
    assert storage.glob_dirs(f"{tmp_path}/[ab]") == [f"file:{tmp_path}/a", f"file:{tmp_path}/b"]
    assert storage.first_line(f"file:{tmp_path}/c/z.json") == "header"


def test_brace_alternatives_expand_like_hadoop_globs():
    assert expand_braces("s3a://b/{2013,2014}/m={01,02}/*.csv") == [
        "s3a://b/2013/m=01/*.csv",
        "s3a://b/2013/m=02/*.csv",
        "s3a://b/2014/m=01/*.csv",
        "s3a://b/2014/m=02/*.csv",
    ]
    assert expand_braces("plain/*.csv") == ["plain/*.csv"]


def test_replace_dir_swaps_a_staged_folder_in_whole(tmp_path):
    _tree(tmp_path, "out/old.parquet", "staging/new.parquet")
    storage = Storage()
    storage.replace_dir(str(tmp_path / "staging"), str(tmp_path / "out"))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["new.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or backup left behind


def test_an_unwritable_output_folder_names_the_setting(tmp_path):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    with pytest.raises(DataError, match=r"score.output_dir=.*file-not-folder/out is not writable .* Fix: point"):
        Storage().check_writable(str(blocker / "out"), "score.output_dir")


def test_a_failed_move_names_both_paths(tmp_path):
    with pytest.raises(DataError, match="could not move .*missing to .*elsewhere"):
        Storage().rename(str(tmp_path / "missing"), str(tmp_path / "elsewhere"))
