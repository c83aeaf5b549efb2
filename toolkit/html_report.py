"""The pipeline's self-contained HTML report: tables plus the plots embedded as base64 PNGs (one file to share).

The report's paths are relative to the folder of report.html (the run folder), so its links still resolve when the
run folder is moved; the images are read from there and embedded.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import urllib.parse
from pathlib import Path
from typing import Any

from toolkit.constants import pyplot
from toolkit.io import is_relative_inside, write_text_atomic
from toolkit.tflite.op_versions import parse_version

log = logging.getLogger(__name__)

APP_RUNTIME = "2.12.0"  # the runtime the reference app pins; the verdict column compares against it

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0} th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
table.text td,table.text th{text-align:left}
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
    # Commas and parentheses are fine in a relative URL: quoting them would show %2C in the status bar.
    return f'<a href="{html.escape(urllib.parse.quote(stored, safe="/,()"))}">{html.escape(text)}</a>'


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


def _table(headers: list[str], rows: list[list[Any]], css: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table{f' class={css!r}' if css else ''}><tr>{head}</tr>{body}</table>"


def _pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}"


def _ver(v: str | None):
    try:
        return parse_version(v or "0")
    except ValueError:
        return parse_version("0")


def roc_overlay(ladder: list[dict[str, Any]]) -> str:
    """Two panels: every curve over the whole range (the app's own crop included), and the backends zoomed to where
    they differ. Rows with the very same curve are drawn once, under all their names, so none hides another."""
    curves = _distinct_curves(ladder)
    if not curves:
        return ""
    plt = pyplot()
    fig, (whole, zoom) = plt.subplots(1, 2, figsize=(12, 4.8))
    lowest = 1.0
    for i, ((fpr, tpr), rows) in enumerate(curves):
        before = all(r["model"].startswith("app before") for r in rows)
        label = " = ".join(r["model"] for r in rows) + f" (AUC {rows[0].get('auc', 0):.4f})"
        width = 1.2 + 1.2 * (len(curves) - 1 - i)  # earlier curves wider: one that a later one overlaps still shows
        line, = whole.plot(fpr, tpr, "--" if before else "-", label=label, linewidth=width)
        if not before:  # the app's own crop is far below the rest: left out of the zoom, so the backends stay apart
            zoom.plot(fpr, tpr, color=line.get_color(), linewidth=width)
            lowest = min([lowest] + [t for f, t in zip(fpr, tpr) if f >= 1e-3])
    for ax, title in ((whole, "ROC, same pairs for every backend"), (zoom, "zoomed on the backends")):
        ax.set_xscale("log")
        ax.set_xlim(1e-4, 1)
        ax.set_xlabel("false accept rate")
        ax.set_ylabel("true accept rate")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    whole.set_ylim(0.0, 1.005)
    zoom.set_ylim(max(0.0, lowest - 0.05), 1.005)
    fig.tight_layout(rect=(0, 0.04 + 0.05 * ((len(curves) + 1) // 2), 1, 1))  # room below for the legend
    fig.legend(loc="lower center", ncol=2, fontsize=8, frameon=False)
    tag = _fig_tag(fig, "ROC overlay")
    plt.close(fig)
    return tag


def _distinct_curves(ladder: list[dict[str, Any]]) -> list[tuple[tuple[tuple, tuple], list[dict[str, Any]]]]:
    """((fpr, tpr), the rows that have exactly that curve), in ladder order."""
    groups: dict[tuple[tuple, tuple], list[dict[str, Any]]] = {}
    for row in ladder:
        pts = row.get("roc_points") or {}
        if pts.get("fpr") and pts.get("tpr"):
            groups.setdefault((tuple(pts["fpr"]), tuple(pts["tpr"])), []).append(row)
    return list(groups.items())


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
        parts.append(_table(["rung", "crop", "10-fold acc %", "TAR@1e-3 %"], rows, "text"))
    parts.append(_deployed_table(dep))
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


THRESHOLD_SOURCES = {"auto": "calibrated by ftk evaluate", "given": "given", "unchanged": "the app's, kept"}


def _deployed_table(dep: dict[str, Any]) -> str:
    """What the app runs now: the asset, the threshold written and where it came from, and what it replaced."""
    threshold = dep.get("threshold")
    source = THRESHOLD_SOURCES.get(dep.get("threshold_source"), dep.get("threshold_source"))
    previous = dep.get("previous") or {}
    before = ", ".join(previous.get("model_files") or []) or "-"
    if previous.get("threshold") is not None:
        before += f" (threshold {previous['threshold']})"
    return _table(["deployed asset", "threshold", "threshold from", "replaced"], [[
        f"<code>{html.escape(str(dep.get('asset') or '-'))}</code>",
        "-" if threshold is None else f"{threshold:.6g}", html.escape(str(source or "-")), html.escape(before)]],
        "text")


def _header(report: dict[str, Any], base: Path) -> str:
    verdict = '<span class="pass">PASS</span>' if report.get("passed") else '<span class="fail">FAIL</span>'
    return "\n".join([
        f"<h1>ftk pipeline report {verdict}</h1>",
        f"<p class='muted'>{html.escape(report.get('created_at', ''))} · ftk {report.get('ftk_version')} · "
        f"config {html.escape(report.get('config_path', ''))} · wall time {report.get('wall_seconds')} s</p>",
        _budget_table(report)])


def _budget_table(report: dict[str, Any]) -> str:
    """Why PASS or FAIL: each budget line, its limit and the measured value (the verdict is these lines)."""
    checks = report.get("budget_checks")
    if checks is None:  # a report from before budget_checks: only its failures are known
        failures = report.get("budget_failures") or []
        return "<ul>" + "".join(f"<li class='fail'>{html.escape(f)}</li>" for f in failures) + "</ul>" if failures \
            else ""
    judged = [c for c in checks if c.get("passed") is not None]
    failed = [c for c in judged if not c["passed"]]
    why = (f"{len(failed)} of {len(judged)} budget lines fail" if failed else
           f"all {len(judged)} budget lines hold" if judged else "no budget line could be judged")
    rows = [[html.escape(c["check"]), html.escape(c["limit"]), html.escape(str(c["value"])), _verdict(c.get("passed"))]
            for c in checks]
    return (f"<p><b>{'FAIL' if failed else 'PASS'}: {why}</b> (the pipeline exits 1 when one fails).</p>"
            + _table(["budget line", "limit", "measured", "verdict"], rows, "text"))


def _verdict(passed: bool | None) -> str:
    if passed is None:
        return "<span class='muted'>not judged</span>"
    return '<span class="pass">pass</span>' if passed else '<span class="fail">fail</span>'


def _ladder_cells(r: dict[str, Any], base: Path, classified: bool) -> list[Any]:
    model = _link(base, r.get("report"), r["model"])
    width = 7 if classified else 6
    if r.get("skipped"):
        return [model, f"<span class='muted'>not measured: {html.escape(r['skipped'])}</span>"] + ["-"] * width
    tar = r.get("tar_at_far") or {}
    cells = [model, f"{_pct(r.get('accuracy_mean'))} ± {_pct(r.get('accuracy_std'))}", f"{r.get('auc', 0):.4f}",
             _pct(r.get("eer")), _pct(tar.get("0.01")), _pct(tar.get("0.001")),
             f"{r['threshold']:.4f}" if r.get("threshold") is not None else "-"]
    return cells + [_pct(r.get("classification_accuracy"))] if classified else cells


def _ladder_section(report: dict[str, Any], base: Path) -> str:
    """The accuracy ladder: one row per embedder (linked to its evaluation report), the ROC overlay, histograms."""
    ladder = report.get("ladder") or []
    far = ladder[0].get("far") if ladder else None
    classified = any(r.get("classification_accuracy") is not None for r in ladder)
    headers = ["model", "10-fold acc %", "AUC", "EER %", "TAR@1e-2 %", "TAR@1e-3 %", f"threshold @FAR {far}"]
    parts = ["<h2>Accuracy ladder (same pairs, every backend)</h2>",
             _table(headers + (["classif. acc %"] if classified else []),
                    [_ladder_cells(r, base, classified) for r in ladder])]
    if ladder:
        parts.append(f"<p class='muted'>{ladder[0].get('n_pairs')} pairs from "
                     f"{html.escape(str(report.get('config', {}).get('evaluate', {}).get('pairs')))}; 10-fold acc: "
                     "verification accuracy, the threshold chosen on the other folds. The PyTorch rows name their "
                     "weights: the start, the fine-tuned model, and the one the TFLite files are exported from "
                     "(shipped).</p>")
    if classified:
        parts.append(_classification_note(ladder))
    parts.append(roc_overlay(ladder))
    parts += [_png_tag(_resolve(base, r.get("scores_png")), f"score histogram {r['model']}", 520)
              for r in ladder if r["model"].startswith(("tflite int8", "pytorch (shipped")) or r["model"] == "pytorch"]
    return "\n".join(p for p in parts if p)


def _classification_note(ladder: list[dict[str, Any]]) -> str:
    """What the classification column measures, and the chance level it is to be read against."""
    setups: dict[tuple[Any, Any], list[str]] = {}
    for r in ladder:
        if r.get("classification_accuracy") is not None and r.get("classification_classes"):
            setups.setdefault((r.get("classification_faces", "?"), r["classification_classes"]), []).append(r["model"])
    said = [f"{faces} faces over {n} classes, chance {100 / n:.2f} %"
            + ("" if len(setups) == 1 else f" ({html.escape(', '.join(models))})")
            for (faces, n), models in setups.items()]
    return ("<p class='muted'>classif. acc: top-1 accuracy of the checkpoint's classifier head (the training task: "
            "which of the training identities a face is) on the prepared test split; only checkpoints have a head, "
            "and it says nothing about verification. " + "; ".join(said) + ".</p>")


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
        rows.append([_link(base, a.get("path"), precision), f"{a['size_bytes'] / 2**20:.2f}",
                     a.get("min_runtime") or "unknown", _runtime_verdict(report, precision, a.get("min_runtime")),
                     f"{a.get('seconds', 0):.1f}", f"{a.get('peak_rss_mib', 0):.0f}",
                     f"<code>{a.get('sha256', '')[:16]}</code>"])
    return "\n".join([
        f"<h2>Export: sizes and runtime compatibility (app pins TFLite {APP_RUNTIME})</h2>",
        _table(["precision", "size MiB", "min runtime", "verdict", "export s", "pipeline RSS MiB", "sha256"], rows),
        "<p class='muted'>min runtime: the oldest TFLite runtime whose kernels support every operator version in the "
        "file (read from the file); \"inferred\": not run on that runtime (deploy.verify_runtime: true runs it). "
        "pipeline RSS: the peak resident memory of the whole pipeline process while that "
        "file was exported, so it includes what the earlier stages still hold; a standalone <code>ftk export</code> "
        f"needs less. {_link(base, export.get('manifest'), 'manifest')}</p>"])


def _runtime_verdict(report: dict[str, Any], precision: str, need: str | None) -> str:
    """Checked when the deploy ran this file on the app's runtime, else inferred from its operator versions."""
    dep = report.get("deploy") or {}
    ran = dep.get("runtime_verify") if dep.get("variant") == precision else None
    if ran:
        version = html.escape(str(ran.get("tensorflow_version") or APP_RUNTIME))
        return f'<span class="pass">ran on TensorFlow Lite {version}</span> <span class="muted">(runtime check)</span>'
    if need is not None and _ver(need) <= _ver(APP_RUNTIME):
        return f'<span class="pass">loads on {APP_RUNTIME}</span> <span class="muted">(inferred from op versions)</span>'
    return f'<span class="fail">needs {html.escape(str(need or "an unknown runtime"))}</span>'


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
        _table(["model", "threads", "median ms", "p90 ms", "min ms", "size MiB", "peak RSS MiB (own process)"],
               rows),
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
    minimum = ((report.get("config") or {}).get("prepare") or {}).get("min_images_per_person")
    splits = prep.get("split_counts") or {}
    return "\n".join(p for p in [
        "<h2>Data</h2>",
        _table(["images", "faces kept", "images set aside", "identities", "images/s"],
               [[prep.get("n_images"), prep.get("n_faces"), prep.get("n_rejected"), prep.get("n_identities"),
                 f"{prep.get('images_per_second', 0):.1f}"]]),
        _rejects_table(prep.get("reject_reasons") or {}, minimum),
        _table(["split"] + [html.escape(k) for k in splits], [["faces"] + list(splits.values())]) if splits else "",
        _png_tag(_resolve(base, prep.get("contact_sheet_path")), "contact sheet", 720)] if p)


def _rejects_table(reasons: dict[str, int], minimum: int | None) -> str:
    """Why images were set aside: most are usually people below the image minimum, not failed detections."""
    if not reasons:
        return ""
    def said(reason: str) -> str:
        if "min-images-per-person" in reason:
            return f"images of people with fewer than {minimum or 'the minimum'} usable faces (min_images_per_person)"
        return reason
    return _table(["set aside because", "images"], [[html.escape(said(k)), v] for k, v in reasons.items()])


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
