"""Share anchored checkpoints: a model card that says where each concept lives, and a push helper.

An anchored model is only useful to others if they know the anchors: which concepts, on
which axes, at which layers, trained with how many labels. `anchor_config.json` holds the
first three for code (`AnchorConfig.from_pretrained("user/repo")`); the card says them to
people, with the label rates, the probe results if a `report.json` sits beside the weights,
and a citation of the method. `push_anchored` uploads weights or adapter, tokenizer,
`anchor_config.json` and the card in one commit; `AnchorTrainer.push_to_hub` does the same
through Trainer's own push (its `create_model_card` writes this card).
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import tempfile
from collections.abc import Sequence
from typing import Any

from .config import CONFIG_NAME, AnchorConfig, ConceptAnchor
from .errors import AnchorCheckpointError, AnchorConfigError
from .io import write_text

CARD_NAME = "README.md"
EXTRA_START, EXTRA_END = "<!-- anchor_hf: other sections -->", "<!-- anchor_hf: end of other sections -->"
REPORT_NAME = "report.json"
TAGS = ("anchor-hf", "sparse-concept-anchoring", "interpretability")
ARXIV_ID = "2512.12469"
CITATION = """@misc{sparse_concept_anchoring,
  title         = {Sparse Concept Anchoring for Interpretable and Controllable Neural Representations},
  eprint        = {2512.12469},
  archivePrefix = {arXiv},
  year          = {2025},
  url           = {https://arxiv.org/abs/2512.12469}
}"""
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")
# Training state and scratch files a shared model does not need (Trainer's push skips `_*` and checkpoints too).
IGNORED = ("checkpoint-*", "_*", "runs", "*.tmp-*", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth",
           "anchor_state*.json", "training_args.bin", ".git", ".cache")


# ---------------------------------------------------------------------- facts for the card
def measure_label_rates(dataset: Any, config: AnchorConfig) -> dict[str, dict[str, float]]:
    """Per concept: `rate` (mean label probability: the expected fraction of examples, or of
    tokens for token-level labels, labelled per visit) and `items` (examples with p > 0).

    docs/method.md §3 and §8: labels are meant to be sparse, and a card should say how sparse,
    and how many distinct items carried them. Concepts whose column is missing are left out.
    """
    columns = getattr(dataset, "column_names", None)
    if not isinstance(columns, list):
        return {}
    rates = {}
    for concept in config.concepts:
        if concept.column not in columns:
            continue
        total = count = items = 0.0
        for value in dataset[concept.column]:
            values = value if isinstance(value, (list, tuple)) else [value]
            values = [float(v) for v in values]
            total += sum(values)
            count += len(values)
            items += any(v > 0 for v in values)
        if count:
            rates[concept.name] = {"rate": total / count, "items": int(items), "examples": len(dataset)}
    return rates


def load_report(report: str | os.PathLike | dict | None) -> dict[str, Any] | None:
    """A probe report as a dict: given directly, or read from a `report.json` path."""
    if report is None or isinstance(report, dict):
        return report
    path = os.fspath(report)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise AnchorCheckpointError(f"`report` = {path!r} is not a readable JSON file ({err})") from err
    if not isinstance(data, dict):
        raise AnchorCheckpointError(f"`report` = {path!r} must hold a JSON object, got {type(data).__name__}")
    return data


def flatten_numbers(data: dict[str, Any], prefix: str = "", depth: int = 3) -> list[tuple[str, float]]:
    """`(dotted.key, number)` for every finite number in a nested dict, `depth` levels deep."""
    rows = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            rows.append((name, float(value)))
        elif isinstance(value, dict) and depth > 1:
            rows.extend(flatten_numbers(value, f"{name}.", depth - 1))
    return rows


# ---------------------------------------------------------------------- the card
def describe_place(concept: ConceptAnchor) -> str:
    """Where a concept is anchored, in words: `axis 3`, `axes 0, 1 (subspace)`, `vector (64 dims)`,
    `−axis 0 (opposite pole)`, followed by `; redirects to grey` when it has a destination."""
    if concept.dims is not None:
        place = f"axis {concept.dims[0]}" if len(concept.dims) == 1 else \
            f"axes {', '.join(map(str, concept.dims))} (subspace)"
    else:
        place = f"vector ({len(concept.vector or [])} dims, normalized on use)"
    if concept.pole == -1:
        place = f"−{place} (opposite pole)"
    if concept.destination is not None:
        place += f"; redirects to {concept.destination}"
    return place


def model_card(config: AnchorConfig, *, model_name: str | None = None, base_model: str | None = None,
               label_rates: dict[str, dict[str, float]] | None = None, report: dict[str, Any] | None = None,
               tags: Sequence[str] | None = None, license: str | None = None, repo_id: str | None = None,
               extra: str | None = None, library_name: str | None = None) -> str:
    """The model card text (YAML front matter + markdown) for a model anchored with `config`.

    Args:
        config: the anchors (its `resolved_layers` are listed when set).
        model_name: the title; default the repo name or "Anchored model".
        base_model: the model it was fine-tuned from, if any (front matter `base_model`).
        label_rates: from `measure_label_rates(dataset, config)`; concepts without one say "not recorded".
        report: probe results; every number in it is listed (nested keys dotted).
        tags, license: front matter; `TAGS` are always included.
        repo_id: used in the usage snippet; default a placeholder.
        extra: markdown appended at the end (e.g. Trainer's training summary).
        library_name: front matter `library_name`; default `transformers` (PEFT adapters: `peft`).
    """
    import yaml

    rates = label_rates or {}
    meta: dict[str, Any] = {"library_name": library_name or "transformers", "tags": _merge_tags(tags)}
    if base_model:
        meta["base_model"] = base_model
    if license:
        meta["license"] = license
    if rates:
        meta["anchor_label_rates"] = rates
    if config.resolved_layers:
        layers = ", ".join(f"`{n}`" for n in config.resolved_layers)
    else:
        layers = ", ".join(f"`{x}`" for x in config.layers) + " (as configured; not yet resolved on a model)"
    title = model_name or (repo_id.split("/")[-1] if repo_id else "Anchored model")
    lines = ["---", yaml.safe_dump(meta, sort_keys=False).rstrip(), "---", "", f"# {title}", "",
             "Trained with anchor_hf, an implementation of Sparse Concept Anchoring "
             f"([arXiv {ARXIV_ID}](https://arxiv.org/abs/{ARXIV_ID})): each concept "
             "below was pulled toward a direction of the hidden space chosen *before* training, from a few noisily "
             "labelled examples, while repulsive terms kept everything else off it. Its place is therefore known "
             "without any search: detect it by the cosine with the anchor, suppress or steer it at inference, or "
             "ablate it from the weights.", "",
             "## Anchored concepts", "",
             f"Layers: {layers} (hidden size {config.hidden_size if config.hidden_size else 'not recorded'}).", "",
             "| concept | place | attract | repel | τ (pooling) | label column | label rate | labelled items |",
             "|---|---|---|---|---|---|---|---|"]
    for c in config.concepts:
        rate = rates.get(c.name)
        rate_text = f"{rate['rate']:.4g}" if rate else "not recorded"
        items_text = f"{rate['items']} of {rate['examples']}" if rate else "not recorded"
        repel = f"{c.repel:g} ({'anti-anchor' if c.repel_kind == 'hinge' else 'anti-subspace'})" if c.repel else "0"
        if c.repel and c.repel_relative:
            repel += " × attract"
        tau = "mean pull" if c.tau is None else f"{c.tau:g}"
        lines.append(f"| {c.name} | {describe_place(c)} | {c.attract:g} | {repel} | {tau} | `{c.column}` | "
                     f"{rate_text} | {items_text} |")
    scheduled = [c.name for c in config.concepts if c.attract_schedule or c.repel_schedule]
    if scheduled:
        lines += ["", f"Weights of {', '.join(scheduled)} follow schedules (ramp, hold, anneal to a floor); "
                      "see `anchor_config.json`."]
    if config.separation:
        lines += ["", f"Separation term: weight {config.separation:g}, power {config.separation_power:g}."]
    concept = config.concepts[0].name
    repo = repo_id or "user/repo"
    lines += ["", "## Use", "", "```python",
              "from transformers import AutoModelForCausalLM",
              "from anchor_hf import AnchorConfig",
              "from anchor_hf.interventions import suppress", "",
              f'model = AutoModelForCausalLM.from_pretrained("{repo}")',
              f'cfg = AnchorConfig.from_pretrained("{repo}")',
              f'with suppress(model, cfg, "{concept}"):  # projects the concept out; hooks removed on exit',
              "    ...", "```"]
    numbers = flatten_numbers(report) if report else []
    if numbers:
        lines += ["", "## Probe results", "", "From `report.json`:", "", "| measurement | value |", "|---|---|"]
        lines += [f"| {name} | {value:.4g} |" for name, value in numbers]
    if extra:
        lines += ["", EXTRA_START, extra.strip(), EXTRA_END]
    lines += ["", "## Citation", "", f"The method (arXiv {ARXIV_ID}):", "", "```bibtex", CITATION, "```", ""]
    return "\n".join(lines)


def write_model_card(save_directory: str | os.PathLike, config: AnchorConfig, *,
                     label_rates: dict[str, dict[str, float]] | None = None,
                     report: str | os.PathLike | dict | None = None, tags: Sequence[str] | None = None,
                     **card_kwargs: Any) -> str:
    """Write `README.md` into `save_directory`, keeping what a card already there knew.

    An existing card (e.g. Trainer's training summary) keeps its body, appended as other
    sections with its headings one level down, and its tags, license, base model, library
    name and label rates, unless given anew. Rewriting our own card replaces it rather than nesting it. The
    report defaults to `save_directory/report.json` when that file exists. Returns the path.
    """
    path = os.path.join(save_directory, CARD_NAME)
    old_meta, old_body = read_card(path)
    if report is None and os.path.isfile(os.path.join(save_directory, REPORT_NAME)):
        report = os.path.join(save_directory, REPORT_NAME)
    if EXTRA_START in old_body:  # our own card: keep only the sections it carried along
        old_body = old_body.split(EXTRA_START, 1)[1].split(EXTRA_END, 1)[0]
    elif "## Anchored concepts" in old_body:
        old_body = ""
    else:  # someone else's card, e.g. Trainer's: its title becomes a section
        old_body = "\n".join(f"#{line}" if line.startswith("#") else line for line in old_body.splitlines())
    card_kwargs.setdefault("license", old_meta.get("license"))
    card_kwargs.setdefault("base_model", old_meta.get("base_model"))
    card_kwargs.setdefault("library_name", old_meta.get("library_name"))
    text = model_card(config, label_rates=label_rates or old_meta.get("anchor_label_rates"),
                      report=load_report(report), tags=[*(tags or []), *(old_meta.get("tags") or [])],
                      extra=old_body or None, **card_kwargs)
    return write_text(path, text)


def read_card(path: str) -> tuple[dict[str, Any], str]:
    """(front matter, body) of a model card file; empty when there is none."""
    import yaml

    if not os.path.isfile(path):
        return {}, ""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.startswith("---"):
        parts = text.split("---", 2)
        if len(parts) == 3:
            try:
                meta = yaml.safe_load(parts[1]) or {}
            except yaml.YAMLError:
                meta = {}
            return (meta if isinstance(meta, dict) else {}), parts[2].strip()
    return {}, text.strip()


# ---------------------------------------------------------------------- push
def push_anchored(source: Any, repo_id: str, *, anchor_config: AnchorConfig | None = None, tokenizer: Any = None,
                  report: str | os.PathLike | dict | None = None,
                  label_rates: dict[str, dict[str, float]] | None = None, tags: Sequence[str] | None = None,
                  base_model: str | None = None, private: bool | None = None, token: str | None = None,
                  revision: str | None = None, commit_message: str = "Upload anchored model") -> Any:
    """Upload an anchored model with its tokenizer, `anchor_config.json` and card, in one commit.

    Args:
        source: a folder written by `AnchorTrainer.save_model` (or `save_pretrained` plus
            `AnchorConfig.save_pretrained`); an `AnchorTrainer` (its model is saved to its
            `output_dir` first: call this on every process, only the main one uploads); or a
            model (full or PEFT) together with `anchor_config` (and `tokenizer`).
        repo_id: `user/name` on the Hub (created if missing).
        anchor_config: required with a model; overrides the folder's otherwise.
        tokenizer: saved beside a model source.
        report: probe results (dict or path); default `report.json` in the folder if present.
        label_rates: per-concept label rates for the card; from a trainer, computed from its
            training data; from a folder, kept from an existing card.
        tags, base_model, private, token, revision, commit_message: as in `huggingface_hub`.

    Returns:
        the `CommitInfo`, or None on processes other than the main one.
    """
    if hasattr(source, "anchor_config") and hasattr(source, "save_model"):  # an AnchorTrainer
        trainer = source
        trainer.save_model()
        if not trainer.is_world_process_zero():
            return None
        rates = label_rates or measure_label_rates(trainer.train_dataset, trainer.anchor_config)
        return _push_folder(trainer.args.output_dir, repo_id, anchor_config or trainer.anchor_config, report=report,
                            label_rates=rates, tags=tags, base_model=base_model, private=private, token=token,
                            revision=revision, commit_message=commit_message)
    if isinstance(source, (str, os.PathLike)):
        folder = os.fspath(source)
        if not os.path.isdir(folder):
            raise AnchorCheckpointError(f"`source` = {folder!r} is not a folder; pass a saved model folder, an "
                                        "AnchorTrainer, or a model with anchor_config=")
        return _push_folder(folder, repo_id, anchor_config, report=report, label_rates=label_rates, tags=tags,
                            base_model=base_model, private=private, token=token, revision=revision,
                            commit_message=commit_message)
    if not hasattr(source, "save_pretrained"):
        raise AnchorConfigError(f"`source` must be a folder, an AnchorTrainer or a model with save_pretrained, got "
                                f"{type(source).__name__}")
    if not isinstance(anchor_config, AnchorConfig):
        raise AnchorConfigError("pushing a model object needs `anchor_config` (the AnchorConfig it was trained with)")
    with tempfile.TemporaryDirectory() as folder:
        source.save_pretrained(folder)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        return _push_folder(folder, repo_id, anchor_config, report=report, label_rates=label_rates, tags=tags,
                            base_model=base_model, private=private, token=token, revision=revision,
                            commit_message=commit_message)


def _push_folder(folder: str, repo_id: str, anchor_config: AnchorConfig | None, *, report: Any,
                 label_rates: dict | None, tags: Sequence[str] | None, base_model: str | None, private: bool | None,
                 token: str | None, revision: str | None, commit_message: str) -> Any:
    from huggingface_hub import CommitOperationAdd, HfApi

    if anchor_config is None:
        if not os.path.isfile(os.path.join(folder, CONFIG_NAME)):
            raise AnchorCheckpointError(f"{folder} has no {CONFIG_NAME}; save it with AnchorTrainer.save_model or "
                                        "pass anchor_config=")
        anchor_config = AnchorConfig.from_pretrained(folder)
    if not any(os.path.isfile(os.path.join(folder, name)) for name in WEIGHT_FILES):
        raise AnchorCheckpointError(f"{folder} holds no weights (looked for {list(WEIGHT_FILES)}); save the model "
                                    "with safetensors first")
    anchor_config.save_pretrained(folder)
    write_model_card(folder, anchor_config, label_rates=label_rates, report=report, tags=tags,
                     base_model=base_model, repo_id=repo_id)
    operations = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=os.path.join(folder, rel))
                  for rel in shareable_files(folder)]
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.create_commit(repo_id, operations, commit_message=commit_message, revision=revision)


def shareable_files(folder: str) -> list[str]:
    """Files under `folder` (relative, `/`-separated) that a shared model needs: no training state."""
    out = []
    for root, dirs, files in os.walk(folder):
        rel_root = os.path.relpath(root, folder)
        dirs[:] = sorted(d for d in dirs if not _ignored(d))
        for name in sorted(files):
            if not _ignored(name):
                out.append(name if rel_root == "." else f"{rel_root}/{name}".replace(os.sep, "/"))
    return out


def _ignored(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in IGNORED)


def _merge_tags(tags: Sequence[str] | None) -> list[str]:
    merged = list(TAGS)
    for tag in tags or []:
        if tag not in merged:
            merged.append(tag)
    return merged
