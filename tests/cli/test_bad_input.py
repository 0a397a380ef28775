"""Bad input: non-zero exit, one line naming the input, no traceback, nothing lost."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import assert_one_line_error, media_path


def test_run_missing_file(cli, tmp_path):
    assert_one_line_error(cli("run", "--source", tmp_path / "nope.mp4", "--no-progress"), "nope.mp4", "not found")


def test_run_corrupt_video(cli, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x01garbage" * 1000)
    assert_one_line_error(cli("run", "--source", bad, "--no-progress"), "broken.mp4", "not a video")


def test_run_bad_config_key_names_key_and_line(cli, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("batching:\n  max_batch: 8\n  max_wiat_ms: 3\n")
    assert_one_line_error(cli("run", "--config", cfg, "--validate-config"), "bad.yaml", "line 3",
                          "batching.max_wiat_ms", "unknown key")


def test_run_bad_config_value(cli, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("batching:\n  max_batch: 0\n")
    assert_one_line_error(cli("run", "--config", cfg, "--validate-config"), "batching.max_batch", "line 2")


def test_run_config_not_yaml(cli, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("batching: [unclosed\n")
    assert_one_line_error(cli("run", "--config", cfg, "--validate-config"), "bad.yaml", "not valid YAML")


def test_default_config_file_validates(cli):
    proc = cli("run", "--config", Path("config/default.yaml"), "--validate-config", check=True)
    assert "ok" in proc.stdout


def test_enroll_non_image_leaves_gallery_untouched(cli, tmp_path):
    gallery = tmp_path / "g.npz"
    cli("enroll", "--gallery", gallery, "--name", "obama", media_path("obama.jpg"), check=True)
    before = gallery.read_bytes()
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    proc = cli("enroll", "--gallery", gallery, "--name", "biden", media_path("biden.jpg"), text)
    assert_one_line_error(proc, "notes.jpg", "not an image")
    assert gallery.read_bytes() == before


def test_enroll_skips_photo_with_two_faces(cli, tmp_path):
    gallery = tmp_path / "g.npz"
    proc = cli("enroll", "--gallery", gallery, "--name", "obama", media_path("obama.jpg"), media_path("two_people.jpg"))
    assert proc.returncode == 0, proc.stderr
    assert "two_people.jpg: 2 faces found" in proc.stderr
    assert "enrolled 1 image" in proc.stdout


def test_enroll_directory_of_people(cli, tmp_path):
    people = tmp_path / "people"
    for name, file in [("obama", "obama.jpg"), ("obama", "obama2.jpg"), ("biden", "biden.jpg")]:
        (people / name).mkdir(parents=True, exist_ok=True)
        (people / name / file).write_bytes(media_path(file).read_bytes())
    proc = cli("enroll", "--gallery", tmp_path / "g.npz", people, check=True)
    assert "biden (1), obama (2)" in proc.stdout


def test_embed_missing_image(cli, tmp_path):
    assert_one_line_error(cli("embed", tmp_path / "missing.png"), "missing.png", "not found")


def test_unknown_model(cli):
    assert_one_line_error(cli("embed", "--model", "nosuch", "x.png"), "nosuch", "no such model")
