"""TextSASRec: SASRec whose item representation adds the item's pretrained sentence embedding.

``item = id_embedding[i] * seen[i] + text_projection(text_embedding[i])`` where ``text_embedding`` is the
frozen all-MiniLM-L6-v2 vector of the item's text (title, categories, tags, description; computed by the
featurize stage, shipped inside the model's weights) and ``seen[i]`` is 0 for items that no training
sequence shows. The same representation is the input embedding and the output (tied) table, so an item
never seen in training is still scored, through its text alone -- a cold item ranks next to the warm
items whose text it resembles.

During training, ``id_dropout`` hides the id part of a random share of items per step, so the text
projection learns to stand on its own (what it must do for cold items; DropoutNet, Volkovs et al. 2017).

Two things keep a text-only item on the warm items' scale (``missing_id``, ``unseen_in_loss``):

- an item without an id part (hidden by ``id_dropout``, never seen, added later) gets one learned
  ``missing_id`` vector in its place, not zeros: trained on the id-dropped items, which are a random share of
  the catalogue, it carries what an average id adds (a learned mean imputation, as DropoutNet's input
  dropout, or an ``[UNK]`` token), so ``seen[i]`` above becomes ``seen[i] ? id[i] : missing_id``;
- the items training never shows are left out of the training loss: they are no evidence against
  anything (a new item did not exist yet), but as negatives at every step and never a positive, their text
  alone was pushed down. Measured on ml-latest-small's cold-item slice (docs/results.md), the model's
  probability mass on the cold items went from 4% to 10% with both (the cold targets are 11% of the cases).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field
from torch import nn

from models.base import EpochCallback, EvalData, FitReport, ModelConfig, TrainData
from models.inputs import check_train_data
from models.new_items import NewItems
from models.sasrec import SASRec, SASRecConfig, SASRecNet


class TextSASRecConfig(SASRecConfig):
    text_dim: int = Field(384, ge=1, description="Width of the item text embeddings (all-MiniLM-L6-v2: 384).")
    id_dropout: float = Field(
        0.2,
        ge=0.0,
        lt=1.0,
        description="Per training step, share of items whose id embedding is hidden (text must carry them).",
    )
    missing_id: bool = Field(
        True,
        description="An item without an id embedding (hidden by id_dropout, never seen in training, added "
        "after training) gets one learned 'missing id' vector in its place instead of zeros, so text-only "
        "items are scored on the warm items' scale.",
    )
    unseen_in_loss: bool = Field(
        False,
        description="Let the items no training sequence shows (cold items) be negatives of the training "
        "loss. Off: they are left out of it, as items that did not exist yet (otherwise their text alone is "
        "pushed down at every step and they rank below the warm items their text resembles).",
    )

    # fields a model saved before 2026-12-03 did not write: the behaviour it was trained with
    saved_before_defaults: ClassVar[dict[str, Any]] = {"missing_id": False, "unseen_in_loss": True}


class TextSASRecNet(SASRecNet):
    def __init__(self, cfg: TextSASRecConfig, n_items: int) -> None:
        super().__init__(cfg, n_items)
        self.text_projection = nn.Linear(cfg.text_dim, cfg.hidden_size)
        self.register_buffer("item_text", torch.zeros(n_items + 1, cfg.text_dim))  # row 0 = padding
        self.register_buffer("id_seen", torch.ones(n_items + 1, 1))  # 0 for items training never shows
        self.register_buffer("not_pad", torch.cat([torch.zeros(1, 1), torch.ones(n_items, 1)]))
        self.id_keep: torch.Tensor | None = None  # (n_items + 1, 1) set per training step
        # stands in for the id embedding of an item that has none (zeros at first: the plain sum)
        self.missing_id = nn.Parameter(torch.zeros(cfg.hidden_size)) if cfg.missing_id else None  # (D,)

    def item_table(self) -> torch.Tensor:
        present = self.get_buffer("id_seen")  # (n_items + 1, 1)
        if self.training and self.id_keep is not None:
            present = present * self.id_keep
        ids = self.item_embedding.weight * present  # (n_items + 1, D)
        if self.missing_id is not None:
            ids = ids + self.missing_id * (1.0 - present)
        text = self.text_projection(self.get_buffer("item_text"))  # (n_items + 1, D)
        return (ids + text) * self.get_buffer("not_pad")  # (n_items + 1, D)


class TextSASRec(SASRec):
    name: ClassVar[str] = "textsasrec"
    config_cls: ClassVar[type[ModelConfig]] = TextSASRecConfig
    config: TextSASRecConfig
    net: TextSASRecNet  # type: ignore[assignment]
    uses_item_text: ClassVar[bool] = True
    # during fit without unseen_in_loss: (the items training shows, dense id -> their index among them)
    _loss_items: tuple[torch.Tensor, torch.Tensor] | None = None

    def _build_net(self) -> nn.Module:
        return TextSASRecNet(self.config, self.n_items)

    def fit(
        self,
        train: TrainData,
        valid: EvalData | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> FitReport:
        check_train_data(self, train)
        text = train.item_text
        if text is None:
            raise ValueError(
                "textsasrec needs item text embeddings: use a dataset with item text and keep "
                "features.text_embeddings on"
            )
        if text.shape != (self.n_items, self.config.text_dim):
            raise ValueError(
                f"textsasrec: item text embeddings have shape {tuple(text.shape)}, expected "
                f"({self.n_items}, {self.config.text_dim}) (one row per vocabulary item, text_dim wide)"
            )
        with torch.no_grad():
            self.net.get_buffer("item_text")[1:] = torch.from_numpy(np.asarray(text, np.float32))
        return super().fit(train, valid, on_epoch)

    def with_new_items(self, new: NewItems) -> TextSASRec:
        """The same network over ``n_items + M`` items: a new item's representation is its text projection
        without an id embedding of its own (plus the learned ``missing_id`` vector, where the model has one),
        as for the items training never showed, as input and as output. Without text embeddings, the
        neighbour fallback of the base class."""
        if new.text is None:
            return super().with_new_items(new)  # type: ignore[return-value]
        text = torch.from_numpy(np.asarray(new.text, np.float32))  # (M, E)
        if text.shape[1] != self.config.text_dim:
            raise ValueError(
                f"textsasrec: new item text has width {text.shape[1]}, expected {self.config.text_dim}"
            )
        m = len(new)
        grown = TextSASRec(self.config, self.n_items + m)
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        extra = {
            "item_embedding.weight": torch.zeros(m, state["item_embedding.weight"].shape[1]),
            "item_text": text,
            "id_seen": torch.zeros(m, 1),
            "not_pad": torch.ones(m, 1),
            "item_counts": torch.zeros(m),
        }
        for key, rows in extra.items():
            state[key] = torch.cat([state[key], rows.to(state[key].dtype)])
        grown.net.load_state_dict(state)
        grown.net.eval()
        return grown

    def _on_fit_start(self, sequences: list[np.ndarray]) -> None:
        seen = self.net.get_buffer("item_counts") > 0  # (n_items,)
        with torch.no_grad():
            self.net.get_buffer("id_seen")[1:, 0] = seen.float()
        self._loss_items = None  # every item is a candidate of the training loss
        if not self.config.unseen_in_loss and not bool(seen.all()):
            items = torch.nonzero(seen).flatten()  # (n_seen,) dense ids training shows
            compact = torch.full((self.n_items,), -1, dtype=torch.long, device=self.device)
            compact[items] = torch.arange(len(items), device=self.device)
            self._loss_items = (items, compact)

    def catalogue_loss(
        self, hidden: torch.Tensor, targets: torch.Tensor, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        """As the base loss, over the items training shows only (unless ``unseen_in_loss``): a training
        target is always one of them, and the others are no evidence against anything."""
        table = self._output_table() if table is None else table
        if self._loss_items is None:
            return super().catalogue_loss(hidden, targets, table)
        items, compact = self._loss_items
        return super().catalogue_loss(hidden, compact[targets], table[items])

    def _on_fit_end(self) -> None:
        self._loss_items = None

    def _batch_loss(self, batch: torch.Tensor) -> torch.Tensor:
        p = self.config.id_dropout
        if p > 0:
            keep = torch.empty(self.n_items + 1, 1, device=self.device).bernoulli_(
                1 - p, generator=self.generator
            )
            self.net.id_keep = keep
        try:
            return super()._batch_loss(batch)
        finally:
            self.net.id_keep = None
