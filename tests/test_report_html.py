"""`evaluate --html`: report.html escapes data, says when audio is missing, puts the utterances
where two systems differ first, and works in headless Chromium (rows, plot, player, sorting,
filtering, no console error)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from decoding_support import tiny_eval_set
from typer.testing import CliRunner

from asrkit.cli.main import app

runner = CliRunner()
ODD_ID = "spk0-<b>&\"it's'"  # HTML special characters in an utterance id
CHROMIUM = os.environ.get("ATTNASR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [  # no sandbox as root; no background connections on a closed network
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def evaluate(*args: str | Path) -> object:
    return runner.invoke(app, ["evaluate", *map(str, args), "--bootstrap", "50"])


def page_ids(page: str) -> list[str]:
    """The utterance ids in the order the page lists them (attribute values unescaped)."""
    import html

    return [html.unescape(m) for m in re.findall(r'<tbody class="utt" data-id="([^"]*)"', page)]


@pytest.fixture(scope="module")
def model_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model-mode report of a tiny model on 3 noise utterances, one with an odd id."""
    root = tmp_path_factory.mktemp("html")
    exp, manifest = tiny_eval_set(root, ids=(ODD_ID, "spk1-1", "spk0-2"))
    out = root / "eval"
    result = evaluate("--model", exp, "--manifest", manifest, "--out", out, "--device", "cpu",
                      "--worst", "3")  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_model_report_embeds_plots_links_audio_and_escapes_ids(model_report: Path) -> None:
    page = (model_report / "report.html").read_text(encoding="utf-8")
    assert sorted(page_ids(page)) == sorted([ODD_ID, "spk1-1", "spk0-2"])
    assert "<b>&" not in page and "&lt;b&gt;&amp;&quot;it&#x27;s&#x27;" in page
    assert page.count('src="data:image/png;base64,') == 3  # every plotted one, embedded
    sources = re.findall(r'<audio controls preload="none" src="([^"]+)"', page)
    assert sorted(sources) == ["../u0.wav", "../u1.wav", "../u2.wav"]
    assert "http://" not in page and "https://" not in page  # nothing fetched from a network


def test_files_mode_page_says_which_recording_is_missing(tmp_path: Path) -> None:
    _, manifest = tiny_eval_set(tmp_path)
    (tmp_path / "u1.wav").unlink()  # moved since the manifest was written
    hyp = tmp_path / "hyp.txt"
    hyp.write_text("spk0-0 ONE TWO\nspk1-1 THREE\nspk0-2 NINE\n")
    result = evaluate("--ref", manifest, "--hyp", hyp, "--out", tmp_path / "A")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "A" / "report.html").read_text(encoding="utf-8")
    assert f"audio file missing: {tmp_path / 'u1.wav'}" in page
    assert page.count("<audio ") == 2
    assert "no attention plot: scored from transcript files" in page


def test_no_html_writes_no_page(tmp_path: Path) -> None:
    ref = tmp_path / "ref.txt"
    ref.write_text("a-1 hello world\n")
    result = evaluate("--ref", ref, "--hyp", ref, "--out", tmp_path / "A", "--no-html")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "A" / "report.json").is_file()
    assert not (tmp_path / "A" / "report.html").exists()


def compared(tmp_path: Path) -> Path:
    """Two systems scored on three utterances, A compared with B; returns A's folder."""
    ref = tmp_path / "ref.txt"
    ref.write_text("a-1 one two three\na-2 four five\nb-3 six seven eight nine\n")
    same_b = tmp_path / "b.txt"
    same_b.write_text("a-1 one two three\na-2 four\nb-3 six seven eight nine\n")
    hyp_a = tmp_path / "a.txt"
    hyp_a.write_text("a-1 one two three\na-2 four\nb-3 six seven ate nine\n")
    assert evaluate("--ref", ref, "--hyp", same_b, "--out", tmp_path / "B").exit_code == 0
    result = evaluate("--ref", ref, "--hyp", hyp_a, "--out", tmp_path / "A",
                      "--compare", tmp_path / "B")  # fmt: skip
    assert result.exit_code == 0, result.output
    return tmp_path / "A"


def test_compare_page_lists_the_utterances_that_differ_first(tmp_path: Path) -> None:
    page = (compared(tmp_path) / "report.html").read_text(encoding="utf-8")
    assert page_ids(page) == ["b-3", "a-2", "a-1"]  # differs; then by errors, then id
    assert "<h2>Comparison</h2>" in page and "MAPSSWE" in page
    assert 'data-differ="1"' in page and page.count('data-differ="0"') == 2


def _browser() -> object:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or ATTNASR_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    return sync_api


def test_report_works_in_headless_chromium(model_report: Path, tmp_path: Path) -> None:
    sync_api = _browser()
    report = tmp_path / "eval"
    shutil.copytree(model_report, report)  # beside the same audio (../u*.wav): a sibling copy
    for wav in model_report.parent.glob("u*.wav"):
        shutil.copy(wav, tmp_path / wav.name)
    problems: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.goto((report / "report.html").as_uri())
        rows = page.locator("#utterances tbody.utt")
        assert rows.count() == 3
        assert page.locator("#shown").inner_text() == "3 of 3 shown"
        odd = page.locator("#utterances tbody.utt", has_text="<b>")
        assert odd.locator("td").first.inner_text() == ODD_ID
        odd.locator("tr.head").click()
        assert odd.locator("tr.detail").is_visible()
        natural_width = odd.locator("img.plot").evaluate("img => img.naturalWidth")
        assert natural_width > 100
        assert odd.locator(".ali .w").count() >= 2
        audio = odd.locator("audio")
        assert audio.count() == 1
        audio.evaluate("a => a.load()")  # the relative path resolves to the recording
        page.wait_for_function(
            "a => a.readyState >= 1 && a.duration > 0", arg=audio.element_handle(), timeout=5000
        )
        page.locator("#utterances th[data-key=id]").click()
        ids = rows.evaluate_all("bodies => bodies.map(b => b.dataset.id)")
        assert ids == sorted(ids)
        page.fill("#filter", "spk1")
        assert page.locator("#shown").inner_text() == "1 of 3 shown"
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
        assert problems == []
        browser.close()


def test_page_says_so_when_a_recording_moved_after_the_report(
    model_report: Path, tmp_path: Path
) -> None:
    sync_api = _browser()
    report = tmp_path / "eval"
    shutil.copytree(model_report, report)  # ../u*.wav do not exist beside this copy
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto((report / "report.html").as_uri())
        first = page.locator("#utterances tbody.utt").first
        first.locator("tr.head").click()
        first.locator("audio").evaluate("a => a.load()")
        note = first.locator("p.missing")
        note.wait_for(timeout=5000)
        assert note.inner_text().startswith("audio file missing or unreadable: ")
        assert first.locator("audio").count() == 0
        browser.close()


def test_compare_page_in_headless_chromium(tmp_path: Path) -> None:
    sync_api = _browser()
    report = compared(tmp_path)
    problems: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.goto((report / "report.html").as_uri())
        first = page.locator("#utterances tbody.utt").first
        assert first.get_attribute("data-id") == "b-3"
        first.locator("tr.head").click()
        assert first.locator(".ali").count() == 2  # this system's alignment and the other's
        assert first.locator(".ali .sub").count() == 1  # EIGHT -> ATE, here only
        page.locator("#utterances th[data-key=delta]").click()
        deltas = page.locator("#utterances tbody.utt").evaluate_all(
            "bodies => bodies.map(b => parseFloat(b.dataset.delta))"
        )
        assert deltas == sorted(deltas)
        assert problems == []
        browser.close()


def test_report_json_names_the_recordings(model_report: Path) -> None:
    rows = [json.loads(line) for line in (model_report / "utterances.jsonl").open()]
    assert all(Path(r["audio"]).name.startswith("u") for r in rows)
