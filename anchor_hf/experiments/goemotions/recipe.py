"""The GoEmotions recipes: flat YAML files (`recipes/goemotions_*.yaml`) read into one dataclass.

Like `anchor-hf train` recipes they are flat (one key per setting, a reason beside each in
the file) and every key can be overridden (`--set key=value`, the value read as YAML).
Unlike them they also say how to evaluate, because `anchor-hf goemotions` trains *and*
evaluates. Every value is checked before anything is built.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import yaml

from anchor_hf.errors import AnchorConfigError
from anchor_hf.resources import recipe_path as shipped_recipe
from anchor_hf.train_args import load_yaml_mapping

RECIPE_FILES = {"scratch": "goemotions_scratch.yaml", "smollm2": "goemotions_smollm2_lora.yaml"}


@dataclass
class GoEmotionsRecipe:
    """Everything one `anchor-hf goemotions` run trains and measures.

    Model: `recipe` (`scratch`: a fresh `model_type` model sized by `model_config` on a BPE of
    `vocab_size`; `smollm2`: fine-tune `model_name_or_path`, default the packaged SmolLM2 GGUF),
    `finetune` (`lora` or `full`) and the LoRA settings.
    Data: `max_length` tokens per comment, `max_train_examples` (None = all 43k),
    `label_scheme` (`visit` or `subset`, see `data.goemotions.label_probabilities`),
    `label_replay` (extra copies of each labelled comment, see `data.goemotions.build_dataset`),
    `word_lists` (concept -> words for token-level labels).
    Anchoring: `anchor_layers` (block indices), `direction` (`axis`: concept i on axis i;
    `random`: a seeded random unit vector per concept, for pretrained models whose axes
    carry outlier features), `attract`, `repel`, `repel_kind`, `tau`, `separation`, `exclusive`
    (the exclusivity term, `geometry.exclusivity_loss`: equal off-anchor class means), `route`
    (gradient routing, `anchor_hf.routing`: labelled comments learn through the anchored place only),
    `anchor_span` (`all`: the pooled pull may land on any token, the appended end-of-text included;
    `text`: only on the comment's own tokens — measured: with `all`, the pull of many runs latched
    onto the end-of-text token, a concept-blind place, see docs/reports/goemotions/README.md).
    Training: the usual `TrainingArguments` subset.
    Evaluation: `eval_examples` test comments for perplexity and the non-concept groups,
    `posthoc_examples` training comments to fit post-hoc directions, steering settings,
    `entanglement_groups` (labels compared with the concept).
    """

    recipe: str = "scratch"
    model_type: str = "llama"
    model_config: dict[str, Any] = field(default_factory=dict)
    vocab_size: int = 4096
    model_name_or_path: str | None = None
    finetune: str = "lora"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj",
                                                                    "gate_proj", "up_proj", "down_proj"])
    max_length: int = 48
    max_train_examples: int | None = None
    label_scheme: str = "visit"
    label_replay: int = 0
    word_lists: dict[str, list[str]] | None = None
    anchor_layers: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    direction: str = "axis"
    attract: float = 0.5
    repel: float = 1.0
    repel_kind: str = "square"
    tau: float | None = 0.1
    separation: float = 0.0
    exclusive: float = 0.0
    route: bool = False
    anchor_span: str = "all"
    learning_rate: float = 3e-3
    max_steps: int = 1000
    per_device_train_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    warmup_ratio: float = 0.05
    weight_decay: float = 0.01
    lr_scheduler_type: str = "cosine"
    logging_steps: int = 50
    bf16: bool = False
    eval_examples: int = 1000
    posthoc_examples: int = 1500
    eval_batch_size: int = 64
    steer_doses: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.4])
    steer_prompts: int = 48
    steer_prompt_tokens: int = 4
    steer_new_tokens: int = 12
    entanglement_groups: list[str] = field(default_factory=lambda: ["annoyance", "disgust", "joy", "gratitude"])

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise `AnchorConfigError` naming the first field whose value is not allowed."""
        choices = {"recipe": ("scratch", "smollm2"), "finetune": ("lora", "full"), "label_scheme": ("visit", "subset"),
                   "direction": ("axis", "random"), "repel_kind": ("square", "hinge"),
                   "lr_scheduler_type": ("linear", "cosine", "constant", "constant_with_warmup")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise AnchorConfigError(f"`{name}` must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        positive_ints = ("vocab_size", "lora_r", "max_length", "max_steps", "per_device_train_batch_size",
                         "gradient_accumulation_steps", "logging_steps", "eval_examples", "posthoc_examples",
                         "eval_batch_size", "steer_prompts", "steer_prompt_tokens", "steer_new_tokens")
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise AnchorConfigError(f"`{name}` must be an int >= 1, got {value!r}")
        for name in ("lora_alpha", "lora_dropout", "attract", "repel", "separation", "exclusive", "learning_rate",
                     "warmup_ratio", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise AnchorConfigError(f"`{name}` must be a finite number >= 0, got {value!r}")
        if isinstance(self.label_replay, bool) or not isinstance(self.label_replay, int) or self.label_replay < 0:
            raise AnchorConfigError(f"`label_replay` must be an int >= 0, got {self.label_replay!r}")
        if self.anchor_span not in ("all", "text"):
            raise AnchorConfigError(f"`anchor_span` must be 'all' or 'text', got {self.anchor_span!r}")
        if not isinstance(self.route, bool):
            raise AnchorConfigError(f"`route` must be true or false, got {self.route!r}")
        if self.max_length < 4:
            raise AnchorConfigError(f"`max_length` must be >= 4 tokens, got {self.max_length}")
        if self.max_train_examples is not None and (not isinstance(self.max_train_examples, int)
                                                    or self.max_train_examples < 2):
            raise AnchorConfigError(f"`max_train_examples` must be None or an int >= 2, got {self.max_train_examples!r}")
        if not self.anchor_layers or not all(isinstance(x, int) and not isinstance(x, bool) for x in self.anchor_layers):
            raise AnchorConfigError(f"`anchor_layers` must be a non-empty list of block indices, got {self.anchor_layers!r}")
        if self.tau is not None and (not isinstance(self.tau, (int, float)) or self.tau <= 0):
            raise AnchorConfigError(f"`tau` must be > 0 or null (mean pull), got {self.tau!r}")
        if not self.steer_doses or not all(isinstance(x, (int, float)) for x in self.steer_doses):
            raise AnchorConfigError(f"`steer_doses` must be a non-empty list of numbers, got {self.steer_doses!r}")
        if self.recipe == "scratch" and self.model_name_or_path is not None:
            raise AnchorConfigError("`model_name_or_path` is for recipe smollm2; recipe scratch builds a fresh "
                                    "model from `model_config`")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    """The recipe in `path` with `overrides` applied; unknown keys are refused with the allowed ones."""
    data = load_yaml_mapping(path, "recipe")
    data.update(overrides or {})
    known = {f.name for f in fields(GoEmotionsRecipe)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise AnchorConfigError(f"{path}: unknown keys {unknown}; allowed: {sorted(known)}")
    return GoEmotionsRecipe(**data)
