"""The GoEmotions recipes and the `--set KEY=VALUE` overrides of `anchor-hf goemotions`.

`recipes/goemotions_scratch.yaml` (recipe A) and `recipes/goemotions_smollm2_lora.yaml`
(recipe B) are ordinary `anchor-hf train` recipes: `dataset: goemotions` with its
`dataset_args`, an `anchor_config` whose one concept is the template every anchored
emotion copies, and an `evaluation` section. `anchor-hf goemotions` reads one, applies the
overrides, and trains each model through the one training driver.

An override names a key where it lives (`max_steps`, `dataset_args.label_replay`,
`evaluation.steer_prompts`, `anchor_config.layers`) or by the short name it had when these
recipes were flat, which keeps the commands of the committed reports working:
`label_replay`, `steer_prompts` (any `dataset_args` / `evaluation` key), `attract`, `repel`,
`repel_kind`, `tau`, `exclusive`, `route` (every concept), `anchor_layers`, `separation`,
`anchor_span` (`all` | `text`: pool over every token, or over the comment without its
end-of-text token), `direction` (`axis` | `random`), `finetune` (`lora` | `full`),
`lora_r`, `lora_alpha`, `lora_dropout`, `lora_target_modules`, `warmup_ratio`.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import yaml

from anchor_hf.errors import AnchorConfigError
from anchor_hf.resources import recipe_path as shipped_recipe
from anchor_hf.train_args import load_yaml_mapping
from .builder import GoEmotionsArgs, GoEmotionsEvaluation
from .data import TEXT_SPAN

RECIPE_FILES = {"scratch": "goemotions_scratch.yaml", "smollm2": "goemotions_smollm2_lora.yaml"}
RANDOM_SEED = 7_000  # seed of the first concept's random direction; the k-th uses RANDOM_SEED + k
CONCEPT_KEYS = ("attract", "repel", "repel_kind", "tau", "exclusive", "route")
LORA_KEYS = {"lora_r": "r", "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout",
             "lora_target_modules": "target_modules"}


@dataclass(frozen=True)
class GoEmotionsRecipe:
    """A GoEmotions recipe after overrides, with the parts the driver reads checked.

    Attributes:
        mapping: the whole recipe, as each training reads it.
        data: its `dataset_args`; evaluation: its `evaluation` section.
    """

    mapping: dict[str, Any]
    data: GoEmotionsArgs
    evaluation: GoEmotionsEvaluation

    @property
    def is_pretrained(self) -> bool:
        """Whether the recipe fine-tunes a pretrained model (recipe B) rather than training one from scratch."""
        return self.mapping.get("model_name_or_path") is not None

    @property
    def template(self) -> dict[str, Any]:
        """The recipe's one concept, which every anchored emotion copies."""
        return self.mapping["anchor_config"]["concepts"][0]


def recipe_path(recipe: str) -> str:
    """The shipped recipe file of `scratch` or `smollm2`."""
    if recipe not in RECIPE_FILES:
        raise AnchorConfigError(f"`--recipe` must be one of {', '.join(RECIPE_FILES)}, got {recipe!r}")
    return str(shipped_recipe(RECIPE_FILES[recipe]))


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["key=value", ...]` -> mapping, each value read as YAML (`max_steps=20`, `anchor_layers=[1,2]`)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise AnchorConfigError(f"`--set` takes key=value, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise AnchorConfigError(f"`--set {item}`: the value is not valid YAML ({err})") from err
    return out


def load_recipe(path: str, overrides: dict[str, Any] | None = None) -> GoEmotionsRecipe:
    """The recipe in `path` with `overrides` applied; raises naming an unknown key or a bad value."""
    mapping = load_yaml_mapping(path, "recipe")
    if mapping.get("dataset") != "goemotions":
        raise AnchorConfigError(
            f"{path}: a GoEmotions recipe has `dataset: goemotions`, got {mapping.get('dataset')!r}")
    anchor = mapping.get("anchor_config")
    if not isinstance(anchor, dict) or not isinstance(anchor.get("concepts"), list) or len(anchor["concepts"]) != 1:
        raise AnchorConfigError(f"{path}: `anchor_config` must hold exactly one concept, the template every anchored "
                                "emotion copies")
    mapping = apply_overrides(mapping, overrides or {})
    return check(mapping)


def check(mapping: dict[str, Any]) -> GoEmotionsRecipe:
    """Check a whole recipe mapping as `anchor-hf train` would, before anything is built."""
    from anchor_hf.commands.train import load_section, resolve_dataset
    from anchor_hf.train_args import parse_train_args

    _, data_args, anchor_args, _ = parse_train_args([], recipe=mapping)
    builder, data = resolve_dataset(data_args)
    anchor_args.to_anchor_config(hidden_size=1)  # the structure only: the width is the model's, known later
    evaluation = builder.read_evaluation(load_section(data_args.evaluation, "evaluation") or {})
    return GoEmotionsRecipe(mapping, data, evaluation)


def apply_overrides(recipe: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of `recipe` with each override set where it lives (see the module docstring)."""
    out = copy.deepcopy(recipe)
    data_keys = {f.name for f in dataclasses.fields(GoEmotionsArgs)}
    evaluation_keys = {f.name for f in dataclasses.fields(GoEmotionsEvaluation)}
    unknown = []
    last = sorted(overrides, key=lambda k: k == "finetune")  # `finetune=full` drops the LoRA keys set beside it
    for key, value in ((k, overrides[k]) for k in last):
        if "." in key:
            _set_path(out, key, value)
        elif key in data_keys:
            out.setdefault("dataset_args", {})[key] = value
        elif key in evaluation_keys:
            out.setdefault("evaluation", {})[key] = value
        elif not _apply_short_name(out, key, value) and not _set_top_level(out, key, value):
            unknown.append(key)
    if unknown:
        raise AnchorConfigError(f"unknown keys {sorted(unknown)}; an override names a recipe key (`max_steps`), a "
                                "key inside a section (`dataset_args.label_rate`), or one of the short names in "
                                f"`anchor_hf.experiments.goemotions.recipe`: dataset_args {sorted(data_keys)}, "
                                f"evaluation {sorted(evaluation_keys)}, anchoring {list(CONCEPT_KEYS)}, ...")
    return out


def _apply_short_name(recipe: dict[str, Any], key: str, value: Any) -> bool:
    """Set a short name of the flat recipes; False when `key` is none."""
    anchor = recipe["anchor_config"]
    template = anchor["concepts"][0]
    if key in CONCEPT_KEYS:
        template[key] = value
    elif key in ("anchor_layers", "separation"):
        anchor["layers" if key == "anchor_layers" else key] = value
    elif key == "anchor_span":
        if value not in ("all", "text"):
            raise AnchorConfigError(f"`anchor_span` must be 'all' or 'text', got {value!r}")
        template["span_column"] = TEXT_SPAN if value == "text" else None
    elif key == "direction":
        if value not in ("axis", "random"):
            raise AnchorConfigError(f"`direction` must be 'axis' or 'random', got {value!r}")
        template.pop("dims", None)
        template.pop("vector", None)
        template.update({"dims": [0]} if value == "axis" else {"vector": {"random_seed": RANDOM_SEED}})
    elif key == "finetune":
        if value not in ("lora", "full"):
            raise AnchorConfigError(f"`finetune` must be 'lora' or 'full', got {value!r}")
        if value == "full":
            recipe["lora_config"] = None
        elif not recipe.get("lora_config"):
            raise AnchorConfigError("`finetune=lora` needs the recipe's `lora_config`; this recipe has none")
    elif key in LORA_KEYS:
        if not recipe.get("lora_config"):
            raise AnchorConfigError(f"`{key}` sets a LoRA setting, but this recipe trains every weight (no "
                                    "`lora_config`)")
        recipe["lora_config"][LORA_KEYS[key]] = value
    elif key == "warmup_ratio":
        recipe["warmup_steps"] = value  # transformers reads a warmup_steps below 1 as a share of the run
    elif key == "recipe":
        raise AnchorConfigError("`recipe` is chosen with `--recipe` (or `--recipe-file`), not overridden")
    else:
        return False
    return True


def _set_top_level(recipe: dict[str, Any], key: str, value: Any) -> bool:
    """Set a top-level recipe key (a field of the `anchor-hf train` argument groups); False when `key` is none."""
    from anchor_hf.train_args import make_parser

    allowed = {f.name for cls in make_parser().dataclass_types for f in dataclasses.fields(cls) if f.init}
    if key not in allowed:
        return False
    recipe[key] = value
    return True


def _set_path(recipe: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b.c` inside the recipe; a list element is addressed by its index (`anchor_config.concepts.0.tau`)."""
    node: Any = recipe
    parts = key.split(".")
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise AnchorConfigError(f"`{key}`: `{'.'.join(parts[:depth])}` has {len(node)} items, got {part!r}")
            index: Any = int(part)
        elif isinstance(node, dict):
            index = part
            if not last and node.get(part) is None:
                node[part] = {}
        else:
            raise AnchorConfigError(f"`{key}`: `{'.'.join(parts[:depth])}` is {node!r}, not a mapping or list")
        if last:
            node[index] = value
        else:
            node = node[index]
