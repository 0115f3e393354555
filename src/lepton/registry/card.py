"""Model cards: Markdown with YAML front matter in the Hugging Face model-card layout, and HTML,
rendered from a facts dict (``lepton.control.models.ModelService.facts``) and nothing else.

The renderer is a pure function: the same facts give byte-identical output (keys sorted, no clock
read), and every line comes from a fact, so a fact that was not recorded leaves no line, or the
words "not recorded" where a reader would otherwise wonder. Limitations are derived from the
recorded numbers with the thresholds below, never written by hand.

Explanations: ``facts["explanations"]`` is the global explanation recorded at registration
(:func:`lepton.explain.global_explanation`'s dict plus ``sample``, ``background_rows`` and the
``plot`` digest), or ``{"not_computed": reason}``; it renders as its own section.
"""

from __future__ import annotations

import base64
import html
import re
from typing import Any

__all__ = [
    "LOW_RECALL",
    "SLICE_GAP",
    "SMALL_TEST_ROWS",
    "limitations",
    "render_html",
    "render_markdown",
]

LOW_RECALL = 0.7
"""A class whose recall is below this is named in the limitations."""
SLICE_GAP = 0.05
"""A slice whose accuracy (or R²) is this much below the whole evaluation's is named."""
SLICE_RMSE_RATIO = 1.25
"""A slice whose RMSE is this many times the whole evaluation's is named."""
SMALL_TEST_ROWS = 100
"""An evaluation on fewer rows than this is called small: one row moves accuracy by over 1%."""
_TOP_FEATURES = 10

_LIBRARY = {"sklearn": "sklearn", "torch": "pytorch", "onnx": "onnx"}


def render_markdown(facts: dict[str, Any]) -> str:
    """The card as Markdown with YAML front matter."""
    import yaml  # type: ignore[import-untyped]  # PyYAML ships no type hints

    front: str = yaml.safe_dump(_front_matter(facts), sort_keys=True, allow_unicode=True, width=100)
    model = facts["model"]
    out: list[str] = ["---", front.rstrip("\n"), "---", "", f"# Model card: {model['ref']}", ""]
    out += _details(facts)
    out += ["## Intended use", "", facts.get("intended_use", "Not recorded."), ""]
    out += _data(facts)
    out += _training(facts)
    out += _evaluation(facts)
    out += _explanations(facts)
    out += ["## Limitations", ""]
    found = limitations(facts)
    out += [f"- {line}" for line in found] if found else ["None found in the recorded numbers."]
    return "\n".join(out).rstrip("\n") + "\n"


def render_html(facts: dict[str, Any], images: dict[str, bytes] | None = None) -> str:
    """The card as one self-contained HTML page: plots are embedded from ``images`` (digest →
    PNG bytes); a plot whose bytes are not given keeps its link."""
    from markdown_it import MarkdownIt

    text = render_markdown(facts)
    body = text.split("---\n", 2)[2] if text.startswith("---\n") else text
    rendered = MarkdownIt("commonmark").enable("table").render(body)
    for digest, png in sorted((images or {}).items()):
        data = base64.b64encode(png).decode("ascii")
        rendered = rendered.replace(
            f'src="plots/{digest}.png"', f'src="data:image/png;base64,{data}"'
        )
    title = html.escape(f"Model card: {facts['model']['ref']}")
    style = (
        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem}"
        "img{max-width:32rem}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
        f"<style>{style}</style>\n</head>\n<body>\n{rendered}</body>\n</html>\n"
    )


# --- front matter --------------------------------------------------------------------------


def _front_matter(facts: dict[str, Any]) -> dict[str, Any]:
    model = facts["model"]
    front: dict[str, Any] = {
        "library_name": _LIBRARY.get(model["flavour"], model["flavour"]),
        "tags": sorted({"lepton", model["task"], model["algorithm"]}),
    }
    dataset = facts.get("dataset")
    datasets = sorted(
        ({dataset["ref"]} if dataset else set())
        | {e["dataset"] for e in facts.get("evaluations", []) if "dataset" in e}
    )
    if datasets:
        front["datasets"] = datasets
    results = []
    for evaluation in facts.get("evaluations", []):
        entry: dict[str, Any] = {
            "task": {"type": model["task"], "name": model["task"]},
            "metrics": [
                {"type": name, "name": name, "value": _round(value)}
                for name, value in sorted(evaluation.get("metrics", {}).items())
            ],
        }
        if "dataset" in evaluation:
            name, _, revision = evaluation["dataset"].partition("@")
            entry["dataset"] = {"name": name, "type": name, "revision": revision}
            if "split" in evaluation:
                entry["dataset"]["split"] = evaluation["split"]
        results.append(entry)
    if results:
        front["model-index"] = [{"name": model["ref"], "results": results}]
    return front


# --- sections ------------------------------------------------------------------------------


def _details(facts: dict[str, Any]) -> list[str]:
    model = facts["model"]
    rows = [
        ("Algorithm", model["algorithm"]),
        ("Task", model["task"]),
        ("Format", model["flavour"]),
        ("Registered", model["registered_at"]),
        ("Aliases", ", ".join(model["aliases"]) if "aliases" in model else None),
        ("Derived from", model.get("parent")),
        ("Training job", model.get("job")),
    ]
    out = ["## Model details", ""]
    out += [f"- **{label}:** {_cell(value)}" for label, value in rows if value is not None]
    signature = facts.get("signature", {})
    inputs = signature.get("inputs")
    if isinstance(inputs, list):
        columns = ", ".join(f"`{c['name']}`" for c in inputs if isinstance(c, dict) and "name" in c)
        out.append(f"- **Inputs:** {len(inputs)} columns: {columns}")
    elif isinstance(inputs, dict) and "shape" in inputs:
        out.append(
            f"- **Inputs:** shape {inputs['shape']}, {inputs.get('dtype', 'dtype not recorded')}"
        )
    classes = signature.get("outputs", {}).get("classes")
    if classes:
        out.append(f"- **Classes:** {', '.join(_cell(c) for c in classes)}")
    return [*out, ""]


def _data(facts: dict[str, Any]) -> list[str]:
    dataset = facts.get("dataset")
    out = ["## Data", ""]
    if not dataset:
        return [*out, "Training data not recorded (the model was registered from outside).", ""]
    rows = [
        ("Dataset", f"`{dataset['ref']}`"),
        ("Source file", dataset.get("source")),
        ("Derived from", dataset.get("parent")),
        ("Rows", dataset.get("rows")),
        ("Columns", dataset.get("columns")),
        ("Duplicate rows", dataset.get("duplicate_rows")),
        ("Target", dataset.get("target")),
        ("Content hash", dataset.get("content_hash")),
    ]
    out += [f"- **{label}:** {_cell(value)}" for label, value in rows if value is not None]
    balance = dataset.get("class_balance")
    if balance:
        out += ["", "Class balance:", "", "| class | rows |", "| --- | --- |"]
        out += [f"| {_cell(k)} | {v} |" for k, v in sorted(balance.items())]
    out += ["", "### Personal data", ""]
    pii = dataset.get("pii", {})
    findings = pii.get("findings", [])
    if findings:
        out += ["| column | kind | values | share | found by |", "| --- | --- | --- | --- | --- |"]
        out += [
            f"| {_cell(f['column'])} | {f['kind']} | {f['count']} | {f['fraction']:.1%} | "
            f"{_cell(f['reason'])} |"
            for f in sorted(findings, key=lambda f: (f["column"], f["kind"]))
        ]
    elif "rows_scanned" in pii:
        out.append(f"The PII scan of {pii['rows_scanned']} rows found none.")
    else:
        out.append("PII scan not recorded.")
    transforms = dataset.get("transforms")
    if transforms:
        out += ["", "Transforms that produced this version:", ""]
        out += [f"{i}. {_step(step)}" for i, step in enumerate(transforms, 1)]
    return [*out, ""]


def _training(facts: dict[str, Any]) -> list[str]:
    out = ["## Training", ""]
    params = facts.get("params")
    if params:
        out += ["| parameter | value |", "| --- | --- |"]
        out += [f"| {_cell(k)} | {_cell(v)} |" for k, v in sorted(params.items())]
    else:
        out.append("Parameters not recorded.")
    leaderboard = facts.get("leaderboard")
    if leaderboard:
        keys = sorted({k for entry in leaderboard for k in entry if k != "params"})
        out += ["", "### AutoML leaderboard", "", "| " + " | ".join(keys) + " |"]
        out.append("| " + " | ".join("---" for _ in keys) + " |")
        out += ["| " + " | ".join(_cell(e.get(k, "")) for k in keys) + " |" for e in leaderboard]
    environment = facts.get("environment")
    if environment:
        out += ["", "### Environment", "", "| package | version |", "| --- | --- |"]
        out += [f"| {_cell(k)} | {_cell(v)} |" for k, v in sorted(environment.items())]
    return [*out, ""]


def _evaluation(facts: dict[str, Any]) -> list[str]:
    out = ["## Evaluation", ""]
    evaluations = facts.get("evaluations", [])
    if not evaluations:
        metrics = facts.get("metrics")
        if metrics:
            out += ["Held-out metrics recorded at training:", ""]
            out += _metric_table(metrics)
        else:
            out.append("No evaluation recorded.")
        return [*out, ""]
    for evaluation in evaluations:
        out += [f"### {_evaluation_title(evaluation)}", ""]
        if "rows" in evaluation:
            out += [f"{evaluation['rows']} rows; target `{evaluation.get('target', '?')}`.", ""]
        out += _metric_table(evaluation.get("metrics", {}))
        per_class = evaluation.get("per_class")
        if per_class:
            out += [
                "",
                "| class | precision | recall | F1 | rows |",
                "| --- | --- | --- | --- | --- |",
            ]
            out += [
                f"| {_cell(label)} | {m['precision']:.4f} | {m['recall']:.4f} | {m['f1']:.4f} | "
                f"{m['support']} |"
                for label, m in sorted(per_class.items())
            ]
        cm = evaluation.get("confusion_matrix")
        if cm:
            labels = [_cell(v) for v in cm["labels"]]
            out += ["", "Confusion matrix (rows: true, columns: predicted):", ""]
            out += ["| | " + " | ".join(labels) + " |", "| --- " * (len(labels) + 1) + "|"]
            out += [
                f"| **{label}** | " + " | ".join(str(n) for n in row) + " |"
                for label, row in zip(labels, cm["matrix"], strict=True)
            ]
        for column, parts in sorted(evaluation.get("slices", {}).items()):
            names = sorted({k for p in parts for k in p["metrics"]})
            out += ["", f"By `{column}`:", "", "| value | rows | " + " | ".join(names) + " |"]
            out.append("| --- " * (len(names) + 2) + "|")
            out += [
                f"| {_cell(p['value'])} | {p['rows']} | "
                + " | ".join(_number(p["metrics"].get(n)) for n in names)
                + " |"
                for p in parts
            ]
        for name, digest in sorted(evaluation.get("plots", {}).items()):
            out += ["", f"![{name.replace('_', ' ')}](plots/{digest}.png)"]
        out.append("")
    return out


_METHODS = {
    "tree_shap": "exact tree SHAP",
    "linear_shap": "exact linear SHAP",
    "permutation_shap": "permutation SHAP",
    "integrated_gradients": "integrated gradients",
    "linear_tfidf": "exact TF-IDF word shares",
    "occlusion": "leave-one-word-out occlusion",
}
_SAMPLES = {
    "test": "of the held-out test split",
    "val": "of the validation split",
    "given": "given at registration",
}


def _explanations(facts: dict[str, Any]) -> list[str]:
    explanations = facts.get("explanations")
    if not explanations:
        return []
    out = ["## Explanations", ""]
    if "not_computed" in explanations:
        return [*out, f"Not computed: {explanations['not_computed']}", ""]
    kind = explanations.get("kind")
    method = _METHODS.get(explanations.get("method", ""), explanations.get("method", "?"))
    if kind == "image" and explanations.get("method") == "occlusion":
        method = "occlusion of a 7 x 7 grid of windows"
    rows = f"{explanations.get('rows', '?')} {'images' if kind == 'image' else 'rows'}"
    where = _SAMPLES.get(explanations.get("sample", ""), "")
    what = "saliency per predicted class" if kind == "image" else "attribution"
    line = f"Mean absolute {what} by {method} over {rows} {where}".replace("  ", " ").rstrip()
    line += f", in {explanations.get('output_space', '?')} space"
    if "background_rows" in explanations:
        line += f", against {explanations['background_rows']} background rows"
    out += [line + ".", ""]
    if kind == "tabular" and explanations.get("features"):
        out += ["| feature | mean absolute attribution |", "| --- | --- |"]
        out += [
            f"| {_cell(f['name'])} | {float(f['mean_abs']):.4g} |"
            for f in explanations["features"][:_TOP_FEATURES]
        ]
    elif kind == "text" and explanations.get("words"):
        out += ["| word | mean absolute attribution | occurrences |", "| --- | --- | --- |"]
        out += [
            f"| {_cell(w['word'])} | {float(w['mean_abs']):.4g} | {w['count']} |"
            for w in explanations["words"][:_TOP_FEATURES]
        ]
    elif kind == "image" and explanations.get("classes"):
        out += ["| predicted class | images |", "| --- | --- |"]
        out += [f"| {_cell(c['class'])} | {c['count']} |" for c in explanations["classes"]]
    if explanations.get("plot"):
        out += ["", f"![global explanation](plots/{explanations['plot']}.png)"]
    return [*out, ""]


def limitations(facts: dict[str, Any]) -> list[str]:
    """Weak spots read off the recorded evaluations, each sentence naming its numbers."""
    found: list[str] = []
    for evaluation in facts.get("evaluations", []):
        where = _evaluation_title(evaluation)
        overall = evaluation.get("metrics", {})
        for label, m in sorted(evaluation.get("per_class", {}).items()):
            if m["support"] > 0 and m["recall"] < LOW_RECALL:
                found.append(
                    f"Class {_cell(label)} has low recall ({m['recall']:.2f} < {LOW_RECALL}) on "
                    f"{where}: the model misses {1 - m['recall']:.0%} of its {m['support']} rows."
                )
        for column, parts in sorted(evaluation.get("slices", {}).items()):
            for part in parts:
                gap = _slice_gap(overall, part["metrics"])
                if gap:
                    found.append(
                        f"Where `{column}` is {_cell(part['value'])} ({part['rows']} rows) {gap} on {where}."
                    )
        rows = evaluation.get("rows")
        if isinstance(rows, int) and rows < SMALL_TEST_ROWS:
            found.append(
                f"{where} has only {rows} rows (< {SMALL_TEST_ROWS}); its metrics are uncertain."
            )
    dataset = facts.get("dataset", {})
    for finding in dataset.get("pii", {}).get("findings", []):
        found.append(
            f"The training data holds personal data ({finding['kind']}) in column "
            f"`{finding['column']}` ({finding['count']} values)."
        )
    if not facts.get("evaluations") and not facts.get("metrics"):
        found.append("No evaluation was recorded, so how well the model does is unknown.")
    return found


def _slice_gap(overall: dict[str, float], part: dict[str, float]) -> str | None:
    for name in ("accuracy", "r2"):
        if name in overall and name in part and overall[name] - part[name] > SLICE_GAP:
            return f"{name} is {part[name]:.3f} against {overall[name]:.3f} overall"
    if "rmse" in overall and "rmse" in part and part["rmse"] > SLICE_RMSE_RATIO * overall["rmse"]:
        return f"RMSE is {part['rmse']:.4g} against {overall['rmse']:.4g} overall"
    return None


# --- formatting ----------------------------------------------------------------------------


def _evaluation_title(evaluation: dict[str, Any]) -> str:
    dataset = evaluation.get("dataset", "dataset not recorded")
    if evaluation.get("split") == "test":
        return f"held-out test split of {dataset}"
    return f"evaluation on {dataset}"


def _metric_table(metrics: dict[str, float]) -> list[str]:
    if not metrics:
        return ["Metrics not recorded."]
    return [
        "| metric | value |",
        "| --- | --- |",
        *(f"| {name} | {_number(value)} |" for name, value in sorted(metrics.items())),
    ]


def _step(step: dict[str, Any]) -> str:
    details = ", ".join(f"{k}: {_cell(v)}" for k, v in sorted(step.items()) if k != "op")
    return f"`{step.get('op', '?')}`" + (f" ({details})" if details else "")


def _round(value: float) -> float:
    return round(float(value), 6)


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


_PIPE = re.compile(r"[|\n]")


def _cell(value: Any) -> str:
    """A value as table-safe text: pipes and newlines would break the Markdown table."""
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, (list, dict)):
        import json

        value = json.dumps(value, sort_keys=True)
    return _PIPE.sub(" ", str(value))
