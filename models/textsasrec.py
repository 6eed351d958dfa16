"""TextSASRec: SASRec whose item representation adds the item's pretrained sentence embedding.

``item = id_embedding[i] * seen[i] + text_projection(text_embedding[i])`` where ``text_embedding`` is the
frozen all-MiniLM-L6-v2 vector of the item's text (title, categories, tags, description; computed by the
featurize stage, shipped inside the model's weights) and ``seen[i]`` is 0 for items that no training
sequence shows. The same representation is the input embedding and the output (tied) table, so an item
never seen in training is still scored, through its text alone -- a cold item ranks next to the warm
items whose text it resembles.

During training, ``id_dropout`` hides the id part of a random share of items per step, so the text
projection learns to stand on its own (what it must do for cold items).
"""

from __future__ import annotations

from typing import ClassVar

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


class TextSASRecNet(SASRecNet):
    def __init__(self, cfg: TextSASRecConfig, n_items: int) -> None:
        super().__init__(cfg, n_items)
        self.text_projection = nn.Linear(cfg.text_dim, cfg.hidden_size)
        self.register_buffer("item_text", torch.zeros(n_items + 1, cfg.text_dim))  # row 0 = padding
        self.register_buffer("id_seen", torch.ones(n_items + 1, 1))  # 0 for items training never shows
        self.register_buffer("not_pad", torch.cat([torch.zeros(1, 1), torch.ones(n_items, 1)]))
        self.id_keep: torch.Tensor | None = None  # (n_items + 1, 1) set per training step

    def item_table(self) -> torch.Tensor:
        ids = self.item_embedding.weight * self.get_buffer("id_seen")  # (n_items + 1, D)
        if self.training and self.id_keep is not None:
            ids = ids * self.id_keep
        text = self.text_projection(self.get_buffer("item_text"))  # (n_items + 1, D)
        return (ids + text) * self.get_buffer("not_pad")  # (n_items + 1, D)


class TextSASRec(SASRec):
    name: ClassVar[str] = "textsasrec"
    config_cls: ClassVar[type[ModelConfig]] = TextSASRecConfig
    config: TextSASRecConfig
    net: TextSASRecNet  # type: ignore[assignment]
    uses_item_text: ClassVar[bool] = True

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
        alone (no id embedding, as for the items training never showed), as input and as output. Without
        text embeddings, the neighbour fallback of the base class."""
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
        seen = (self.net.get_buffer("item_counts") > 0).float()  # (n_items,)
        with torch.no_grad():
            self.net.get_buffer("id_seen")[1:, 0] = seen

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
