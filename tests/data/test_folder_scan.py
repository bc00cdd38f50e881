"""The folder scan on a messy disk: links, loops, special files, unreadable and empty classes, copies across splits."""

from __future__ import annotations

import os
import shutil

import pytest

from cnnlab.data import load_data
from cnnlab.data.folder import scan_folder
from cnnlab.data.splits import describe_duplicates
from cnnlab.errors import DataError

from ..hostile import class_folders, release_fifo_later, make_socket, unprivileged, world_traversable


def every_path(splits) -> list[str]:
    return [os.path.realpath(p) for part in (splits.train, splits.val, splits.test) for p in part.paths]


def test_a_link_loop_and_other_names_of_one_file_count_it_once(tmp_path):
    root = class_folders(tmp_path / "data")
    (root / "a" / "loop").symlink_to(".")
    (root / "b" / "up").symlink_to("..")
    (root / "c" / "alias.png").symlink_to(root / "c" / "00.png")
    os.link(root / "c" / "01.png", root / "c" / "hard.png")
    splits = load_data(f"folder:{root}", image_size=8)
    paths = every_path(splits)
    assert sorted(paths) == sorted(os.path.realpath(p) for p in root.glob("*/0*.png"))  # 18 images, once each
    assert sum("not followed" in line for line in splits.skipped) == 2
    assert sum("counted once" in line for line in splits.skipped) == 2


def test_links_to_folders_outside_the_data_set_are_followed_once(tmp_path):
    root = class_folders(tmp_path / "data")
    outside = class_folders(tmp_path / "shared", classes=("extra",), per_class=2)
    (root / "a" / "more").symlink_to(outside / "extra")
    (root / "a" / "again").symlink_to(outside / "extra")
    scan = scan_folder(root, 8)
    assert scan.labels.count(0) == 8
    assert [line.rsplit("/", 1)[-1] for line in scan.skipped] == ["more: a link to a folder already in the data set, not followed"]


def test_special_files_are_listed_and_never_opened(tmp_path):
    root = class_folders(tmp_path / "data")
    os.mkfifo(root / "a" / "pipe.png")
    make_socket(root / "b" / "socket.png")
    (root / "c" / "dangling.png").symlink_to(root / "nowhere.png")
    release_fifo_later(root / "a" / "pipe.png")
    scan = scan_folder(root, 8)
    assert len(scan.paths) == 18
    reasons = {line.rsplit("/", 1)[-1] for line in scan.skipped}
    assert reasons == {"pipe.png: a FIFO (named pipe), not an image file", "socket.png: a socket, not an image file",
                       "dangling.png: a broken symbolic link"}


def test_an_unreadable_class_folder_is_an_error_naming_it(tmp_path):
    root = class_folders(world_traversable(tmp_path / "data"))
    (root / "b").chmod(0)
    try:
        with unprivileged(), pytest.raises(DataError) as caught:
            load_data(f"folder:{root}", image_size=8)
    finally:
        (root / "b").chmod(0o755)
    assert f"The folder {root / 'b'} cannot be read (Permission denied)" in str(caught.value)


@pytest.mark.parametrize("content", [None, "notes.txt"])
def test_a_class_folder_without_a_readable_image_is_an_error_naming_it(tmp_path, content):
    root = class_folders(tmp_path / "data")
    shutil.rmtree(root / "b")
    (root / "b").mkdir()
    if content:
        (root / "b" / content).write_text("no image")
    with pytest.raises(DataError, match="hold no readable image") as caught:
        load_data(f"folder:{root}", image_size=8)
    assert f"{root / 'b'} ({1 if content else 0} file(s) tried)" in str(caught.value)


def test_exact_copies_in_different_splits_are_reported_with_their_paths(tmp_path):
    root = class_folders(tmp_path / "data", per_class=10)
    for i in range(10):
        shutil.copy(root / "a" / f"{i:02d}.png", root / "a" / f"copy{i}.png")
    splits = load_data(f"folder:{root}", image_size=8, seed=0)
    where = {p: name for name in ("train", "val", "test") for p in getattr(splits, name).paths}
    original, copy = (lambda i: str(root / "a" / f"{i:02d}.png")), (lambda i: str(root / "a" / f"copy{i}.png"))
    leaks = {i for i in range(10) if where[original(i)] != where[copy(i)]}
    assert leaks, "the seed must put some copies in different splits for this test to mean anything"
    reported = {frozenset(zip(d.paths, d.splits)) for d in splits.duplicates}
    assert reported == {frozenset({(original(i), where[original(i)]), (copy(i), where[copy(i)])}) for i in leaks}
    line = describe_duplicates(splits.duplicates)
    assert line.startswith(f"Warning: {len(leaks)} image(s) have exact copies in another split")
    assert str(root / "a" / f"copy{min(leaks)}.png") in line or "more" in line
    assert describe_duplicates([]) == ""
