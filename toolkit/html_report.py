"""The pipeline's self-contained HTML report: tables plus the plots embedded as base64 PNGs (one file to share).

The report's paths are relative to the folder of report.html (the run folder), so its links still resolve when the
run folder is moved; the images are read from there and embedded.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import urllib.parse
from pathlib import Path
from typing import Any

from toolkit.io import is_relative_inside, write_text_atomic

log = logging.getLogger(__name__)

APP_RUNTIME = "2.12.0"  # the runtime the reference app pins; the verdict column compares against it

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0} th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
.pass{color:#0a0;font-weight:bold} .fail{color:#c00;font-weight:bold} .muted{color:#777}
img{max-width:100%;border:1px solid #eee;margin:.4em 0} pre{background:#f7f7f7;padding:.8em;overflow:auto}
"""


def _resolve(base: Path, stored: str | None) -> Path | None:
    """A file of the run named by the report (relative to the report's folder); None for one outside it: the
    report's paths come partly from cached stage records, and the page embeds nothing from elsewhere."""
    if not stored:
        return None
    if not is_relative_inside(stored):
        log.warning("report.html: %s is not inside the run folder, left out", stored)
        return None
    return base / stored


def _link(base: Path, stored: str | None, text: str) -> str:
    """``text`` linking to a file of the run, by its run-relative path (plain text when it is not there)."""
    target = _resolve(base, stored)
    if target is None or not target.exists():
        return html.escape(text)
    return f'<a href="{html.escape(urllib.parse.quote(stored))}">{html.escape(text)}</a>'


def _png_tag(path: Path | None, alt: str, width: int | None = None) -> str:
    if not path or not Path(path).is_file():
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    w = f' width="{width}"' if width else ""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"{w}>'


def _fig_tag(fig, alt: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}"


def _ver(v: str | None):
    from toolkit.tflite.op_versions import parse_version

    try:
        return parse_version(v or "0")
    except ValueError:
        return parse_version("0")


def roc_overlay(ladder: list[dict[str, Any]]) -> str:
    from toolkit.constants import pyplot

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 4.5))
    drawn = False
    lowest = 1.0  # zoom the TAR axis on the part of the curve that tells the backends apart
    for row in ladder:
        pts = row.get("roc_points") or {}
        if pts.get("fpr") and pts.get("tpr"):
            # The app's own crop (before deploy) is far below the rest: drawn dashed, left out of the zoom, so the
            # backends stay told apart (its figures are in the tables).
            before = row["model"].startswith("app before")
            ax.plot(pts["fpr"], pts["tpr"], "--" if before else "-",
                    label=f"{row['model']} (AUC {row.get('auc', 0):.4f})")
            drawn = True
            if not before:
                lowest = min([lowest] + [t for f, t in zip(pts["fpr"], pts["tpr"]) if f >= 1e-3])
    if not drawn:
        plt.close(fig)
        return ""
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(max(0.0, lowest - 0.05), 1.005)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title("ROC, same pairs for every backend")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    tag = _fig_tag(fig, "ROC overlay")
    plt.close(fig)
    return tag


def _deploy_section(report: dict[str, Any], base: Path) -> str:
    """What the app computes before and after the deploy, the runtime verdict, the app diff."""
    dep, ladder = report.get("deploy"), report.get("ladder") or []
    if not dep:
        return ""
    parts = ["<h2>Deploy into the app</h2>"]
    variant = dep.get("variant")
    rungs = {r["model"]: r for r in ladder if "accuracy_mean" in r}
    rows = []
    for label, note in ((f"tflite {variant}", "ftk's crop (the model's spec)"),
                        (f"app before deploy ({variant})", "the app's own crop, simulated"),
                        (f"app after deploy ({variant})", "the generated Kotlin, run on the JVM")):
        r = rungs.get(label)
        if r:
            tar = (r.get("tar_at_far") or {}).get("0.001")
            rows.append([html.escape(label), html.escape(note), _pct(r["accuracy_mean"]), _pct(tar)])
    if rows:
        parts.append("<p>The same model file on the same pairs; only the face crop differs.</p>")
        parts.append(_table(["rung", "crop", "10-fold acc %", "TAR@1e-3 %"], rows))
    parts.append(f"<pre>{html.escape(dep.get('compatibility_text') or '')}</pre>")
    pre = dep.get("preprocessing") or {}
    if pre.get("patched"):
        parts.append("<p>App preprocessing replaced by the one generated from the model's spec; found:</p><ul>"
                     + "".join(f"<li>{html.escape(f)}</li>" for f in pre.get("found", [])) + "</ul>")
    elif pre:
        parts.append("<p class='fail'>The app keeps its own face crop (keep_app_preprocessing).</p>")
    where = "would change (dry run)" if dep.get("dry_run") else "changed"
    parts.append(f"<p>{len(dep.get('changed_files', []))} file(s) {where} in {html.escape(str(dep.get('app_dir')))}"
                 f"; backup {html.escape(str(dep.get('backup_dir')))}</p>")
    parts.append(f"<details><summary>diff</summary><pre>{html.escape(dep.get('diff') or '') or 'no changes'}"
                 "</pre></details>")
    for w in dep.get("warnings", []):
        parts.append(f"<p class='muted'>warning: {html.escape(str(w))}</p>")
    return "\n".join(parts)


def _header(report: dict[str, Any], base: Path) -> str:
    verdict = '<span class="pass">PASS</span>' if report.get("passed") else '<span class="fail">FAIL</span>'
    parts = [f"<h1>ftk pipeline report {verdict}</h1>",
             f"<p class='muted'>{html.escape(report.get('created_at', ''))} · ftk {report.get('ftk_version')} · "
             f"config {html.escape(report.get('config_path', ''))} · wall time {report.get('wall_seconds')} s</p>"]
    if report.get("budget_failures"):
        parts.append("<ul>" + "".join(f"<li class='fail'>{html.escape(f)}</li>" for f in report["budget_failures"])
                     + "</ul>")
    return "\n".join(parts)


def _ladder_cells(r: dict[str, Any], base: Path) -> list[Any]:
    model = _link(base, r.get("report"), r["model"])
    if r.get("skipped"):
        return [model, f"<span class='muted'>not measured: {html.escape(r['skipped'])}</span>"] + ["-"] * 6
    tar = r.get("tar_at_far") or {}
    return [model, f"{_pct(r.get('accuracy_mean'))} ± {_pct(r.get('accuracy_std'))}", f"{r.get('auc', 0):.4f}",
            _pct(r.get("eer")), _pct(tar.get("0.01")), _pct(tar.get("0.001")),
            f"{r['threshold']:.4f}" if r.get("threshold") is not None else "-", _pct(r.get("classification_accuracy"))]


def _ladder_section(report: dict[str, Any], base: Path) -> str:
    """The accuracy ladder: one row per embedder (linked to its evaluation report), the ROC overlay, histograms."""
    ladder = report.get("ladder") or []
    far = ladder[0].get("far") if ladder else None
    parts = ["<h2>Accuracy ladder (same pairs, every backend)</h2>",
             _table(["model", "10-fold acc %", "AUC", "EER %", "TAR@1e-2 %", "TAR@1e-3 %", f"threshold @FAR {far}",
                     "classif. acc %"], [_ladder_cells(r, base) for r in ladder])]
    if ladder:
        parts.append(f"<p class='muted'>{ladder[0].get('n_pairs')} pairs from "
                     f"{html.escape(str(report.get('config', {}).get('evaluate', {}).get('pairs')))}</p>")
    parts.append(roc_overlay(ladder))
    parts += [_png_tag(_resolve(base, r.get("scores_png")), f"score histogram {r['model']}", 520)
              for r in ladder if r["model"].startswith("tflite int8") or r["model"] == "pytorch"]
    return "\n".join(p for p in parts if p)


def _select_section(report: dict[str, Any], base: Path) -> str:
    select = report.get("select")
    if not select:
        return ""
    return (f"<p><b>Shipped: the {html.escape(select['shipped'])} model.</b> {html.escape(select['reason'])} "
            f"({html.escape(Path(select['pairs']).name)}, identities disjoint from the test pairs).</p>")


def _parity_section(report: dict[str, Any], base: Path) -> str:
    parity = report.get("parity") or {}
    if not parity:
        return ""
    rows = []
    for precision, rep in parity.items():
        m = rep.get("metrics", {})
        ok = '<span class="pass">pass</span>' if rep.get("passed") else '<span class="fail">fail</span>'
        rows.append([_link(base, f"parity/parity_{precision}.json", precision), m.get("faces", "-"),
                     f"{m.get('mean_cosine', float('nan')):.5f}", f"{m.get('min_cosine', float('nan')):.5f}",
                     f"{m.get('max_abs_diff', float('nan')):.4g}",
                     f"{m.get('max_similarity_deviation', float('nan')):.4g}",
                     _pct(m.get("nn_agreement")), _pct(m.get("decision_agreement")), ok])
    sources = sorted({str(rep.get("faces_source")) for rep in parity.values() if rep.get("faces_source")})
    said = "".join(f"<p class='muted'>faces: {html.escape(src)}</p>" for src in sources)
    return "<h2>Parity (TFLite vs PyTorch on real face crops)</h2>\n" + said + _table(
        ["precision", "faces", "cos mean", "cos min", "max |diff|", "sim-matrix max dev", "NN agree %",
         "decision agree %", "verdict"], rows)


def _export_section(report: dict[str, Any], base: Path) -> str:
    """Sizes and the runtime verdict against the TFLite version the app pins."""
    export = report.get("export") or {}
    if not export.get("artifacts"):
        return ""
    rows = []
    for precision, a in export["artifacts"].items():
        need = a.get("min_runtime")
        ok = need is not None and _ver(need) <= _ver(APP_RUNTIME)
        verdict = ('<span class="pass">loads on ' + APP_RUNTIME + "</span>") if ok else (
            f'<span class="fail">needs {html.escape(str(need))}</span>')
        rows.append([_link(base, a.get("path"), precision), f"{a['size_bytes'] / 2**20:.2f}", need or "unknown",
                     verdict, f"{a.get('seconds', 0):.1f}", f"{a.get('peak_rss_mib', 0):.0f}",
                     f"<code>{a.get('sha256', '')[:16]}</code>"])
    return "\n".join([
        f"<h2>Export: sizes and runtime compatibility (app pins TFLite {APP_RUNTIME})</h2>",
        _table(["precision", "size MiB", "min runtime", "verdict", "export s", "peak RSS MiB", "sha256"], rows),
        f"<p class='muted'>{_link(base, export.get('manifest'), 'manifest')}</p>"])


def _bench_section(report: dict[str, Any], base: Path) -> str:
    bench = report.get("bench")
    if not bench:
        return ""
    rows = []
    for e in bench.get("entries", []):
        lat = e.get("latency") or {}
        rows.append([html.escape(e["model"]), e["threads"], f"{lat.get('median_ms', float('nan')):.2f}",
                     f"{lat.get('p90_ms', float('nan')):.2f}", f"{lat.get('min_ms', float('nan')):.2f}",
                     f"{(e.get('file_size_bytes') or 0) / 2**20:.2f}", f"{e.get('peak_rss_mb') or float('nan'):.0f}"])
    outputs, env = bench.get("outputs") or {}, bench.get("environment") or {}
    return "\n".join(p for p in [
        "<h2>Host latency</h2>",
        _table(["model", "threads", "median ms", "p90 ms", "min ms", "size MiB", "peak RSS MiB"], rows),
        _png_tag(_resolve(base, outputs.get("plot")), "latency chart", 640),
        f"<p class='muted'>host: {html.escape(str((env.get('cpu_info') or {}).get('line') or env.get('cpu', '')))} · "
        f"{_link(base, outputs.get('json'), 'bench.json')}</p>"] if p)


def _train_section(report: dict[str, Any], base: Path) -> str:
    train = report.get("train")
    if not train:
        return ""
    parts = ["<h2>Training</h2>", _table(
        ["classes", "train images", "val images", "epochs", "best val acc %", "images/s", "device", "seconds"],
        [[train.get("num_classes"), train.get("num_train"), train.get("num_val"), train.get("epochs_completed"),
          _pct(train.get("best_val_acc")), f"{train.get('images_per_second', 0):.1f}", train.get("device"),
          f"{train.get('seconds', 0):.0f}"]])]
    out_dir = _resolve(base, train.get("out_dir"))
    parts += [_png_tag(png, png.stem, 720) for png in (sorted(out_dir.glob("*.png")) if out_dir and out_dir.is_dir()
                                                      else [])]
    return "\n".join(p for p in parts if p)


def _data_section(report: dict[str, Any], base: Path) -> str:
    prep = report.get("prepare") or {}
    if not prep:
        return ""
    return "\n".join(p for p in [
        "<h2>Data</h2>",
        _table(["images", "faces", "rejected", "identities", "splits", "images/s"],
               [[prep.get("n_images"), prep.get("n_faces"), prep.get("n_rejected"), prep.get("n_identities"),
                 html.escape(json.dumps(prep.get("split_counts", {}))), f"{prep.get('images_per_second', 0):.1f}"]]),
        _png_tag(_resolve(base, prep.get("contact_sheet_path")), "contact sheet", 720)] if p)


def _stages_section(report: dict[str, Any], base: Path) -> str:
    return "<h2>Stages</h2>\n" + _table(
        ["stage", "cached", "seconds", "key"],
        [[_link(base, f"{s['name']}/stage.json", s["name"]), "yes" if s["cached"] else "no", s["seconds"],
          f"<code>{s['key']}</code>"] for s in report.get("stages", [])])


def _versions_section(report: dict[str, Any], base: Path) -> str:
    values = {**report.get("versions", {}), **report.get("inputs", {})}
    return "<h2>Versions and inputs</h2>\n" + _table(
        ["what", "value"], [[html.escape(k), html.escape(str(v))] for k, v in values.items()])


# In page order; each takes the report and the folder its paths are relative to, and returns "" to be left out.
SECTIONS = (_header, _ladder_section, _select_section, _parity_section, _export_section, _bench_section,
            _train_section, _data_section, _deploy_section, _stages_section, _versions_section)


def write_html_report(report: dict[str, Any], path: str | Path) -> Path:
    """report.html at ``path``; the report's relative paths are relative to ``path``'s folder."""
    path = Path(path)
    base = path.parent
    page = [f"<!doctype html><html><head><meta charset='utf-8'><title>ftk report</title><style>{CSS}</style>"
            "</head><body>"] + [section(report, base) for section in SECTIONS] + ["</body></html>"]
    write_text_atomic(path, "\n".join(p for p in page if p))
    return path
