"""DistilBERT sentiment classifier (2 labels) with a real WordPiece tokenizer.

Few, large GEMMs that release the GIL: the model that scales with threads about as well as with
processes.  Full: ``DistilBertForSequenceClassification`` with the ``distilbert-base-uncased``
dimensions (vocab 30522, dim 768, 6 layers, 12 heads, FFN 3072, 512 positions; 67.0M
parameters), built from its config with seeded weights.  Tiny: 2 layers, dim 64, 2 heads, FFN 128,
same vocabulary size and tokenizer.

Requests are raw text (OIP ``BYTES``).  Tokenizing is part of :meth:`DistilBertModel.preprocess`,
so it is counted in each request's CPU work: WordPiece over the offline vocabulary of
:mod:`servelab.servers.zoo.wordpiece`, ``[CLS] ... [SEP]``, truncation to 512 tokens,
right-padding to the longest sequence in the batch with an attention mask.  Texts are tokenized
one at a time with ``Tokenizer.encode`` (never ``encode_batch``, whose Rust thread pool would add
threads that the experiment did not ask for).  :meth:`DistilBertModel.make_input` writes
synthetic reviews (:mod:`servelab.servers.zoo.reviews`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from servelab.servers.zoo import reviews, wordpiece
from servelab.servers.zoo.base import (
    Inputs,
    TensorSpec,
    ZooModel,
    classifier_outputs,
    stack_requests,
)

log = logging.getLogger(__name__)

NUM_LABELS = 2
FULL_CONFIG = dict(
    vocab_size=30522, max_position_embeddings=512, dim=768, n_layers=6, n_heads=12, hidden_dim=3072
)
TINY_CONFIG = dict(
    vocab_size=30522, max_position_embeddings=512, dim=64, n_layers=2, n_heads=2, hidden_dim=128
)


@dataclass
class TextBatch:
    """A tokenized batch: ``input_ids`` and ``attention_mask``, both int64 (N, L)."""

    input_ids: Any
    attention_mask: Any



def _as_str(value: Any) -> str:
    if isinstance(value, bytes | bytearray | np.bytes_):
        return bytes(value).decode("utf-8")
    if isinstance(value, str):
        return value
    raise TypeError(f"text must be str or UTF-8 bytes, got {type(value).__name__}")


class DistilBertModel(ZooModel):
    """DistilBERT for sequence classification: ``text`` BYTES (N,) -> 2-class probabilities.

    Stages: embeddings (+ attention-mask preparation), one per transformer layer, then the
    classification head: 8 stages for the full model, 4 for tiny.
    """

    name = "distilbert"
    inputs = (TensorSpec("text", "BYTES", (-1,)),)
    outputs = (
        TensorSpec("probabilities", "FP32", (-1, NUM_LABELS)),
        TensorSpec("label", "INT64", (-1,)),
    )
    size_unit = "words"
    default_size = 128

    max_length = wordpiece.MAX_LENGTH

    @property
    def config_kwargs(self) -> dict[str, Any]:
        """``DistilBertConfig`` arguments for this variant."""
        dims = FULL_CONFIG if self.variant == "full" else TINY_CONFIG
        return {**dims, "num_labels": NUM_LABELS, "pad_token_id": wordpiece.PAD_ID}

    def build(self) -> Any:
        from transformers import DistilBertConfig, DistilBertForSequenceClassification

        return DistilBertForSequenceClassification(DistilBertConfig(**self.config_kwargs))

    @property
    def tokenizer(self) -> Any:
        return wordpiece.load_tokenizer(wordpiece.VOCAB_FILE, self.max_length)

    # -- request path ---------------------------------------------------------------------------
    def make_input(self, size: int | None, rng: np.random.Generator) -> Inputs:
        n_words = self.default_size if size is None else size
        words = reviews.review_text(n_words, rng)
        return {"text": np.array([words.encode("utf-8")], dtype=object)}

    def input_size(self, inputs: Inputs) -> int:
        return len(_as_str(np.asarray(inputs["text"], dtype=object).reshape(-1)[0]).split())

    def tokenize(self, texts: Sequence[str]) -> TextBatch:
        """WordPiece-encode ``texts`` one by one and right-pad to the longest (ids, mask)."""
        import torch

        tokenizer = self.tokenizer
        encodings = [tokenizer.encode(t).ids for t in texts]
        length = max(len(ids) for ids in encodings)
        input_ids = np.full((len(encodings), length), wordpiece.PAD_ID, dtype=np.int64)
        mask = np.zeros((len(encodings), length), dtype=np.int64)
        for i, ids in enumerate(encodings):
            input_ids[i, : len(ids)] = ids
            mask[i, : len(ids)] = 1
        return TextBatch(torch.from_numpy(input_ids), torch.from_numpy(mask))

    def preprocess(self, inputs: Sequence[Inputs]) -> TextBatch:
        texts = stack_requests(inputs, "text", dtype=object)
        return self.tokenize([_as_str(t) for t in texts.reshape(len(texts), -1)[:, 0]])

    def stages(self, batch: TextBatch) -> list[Callable[[Any], Any]]:
        """Mirrors ``DistilBertForSequenceClassification.forward`` (eval mode) submodule by
        submodule; :meth:`forward_unstaged` is the reference it is tested against."""
        import torch

        module = self.load()
        body = module.distilbert

        def embed(b: TextBatch) -> tuple[Any, Any]:
            hidden = body.embeddings(b.input_ids)
            return hidden, _layer_mask(body.config, hidden, b.attention_mask)

        def layer_stage(layer: Any) -> Callable[[Any], Any]:
            def run(state: tuple[Any, Any]) -> tuple[Any, Any]:
                hidden, mask = state
                out = layer(hidden, mask)
                return (out[0] if isinstance(out, tuple) else out), mask

            return run

        def head(state: tuple[Any, Any]) -> Any:
            pooled = state[0][:, 0]
            pooled = torch.relu(module.pre_classifier(pooled))
            return module.classifier(module.dropout(pooled))

        return [embed, *(layer_stage(layer) for layer in body.transformer.layer), head]

    def forward_unstaged(self, batch: TextBatch) -> Any:
        import torch

        with torch.inference_mode():
            return self.load()(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask
            ).logits

    def postprocess(self, output: Any, n: int) -> list[Inputs]:
        return classifier_outputs(output, n)


def _layer_mask(config: Any, hidden: Any, attention_mask: Any) -> Any:
    """The attention mask each ``TransformerBlock`` expects, as ``DistilBertModel.forward``
    builds it for the configured attention implementation."""
    try:
        from transformers.masking_utils import create_bidirectional_mask
    except ImportError:  # transformers < 5: eager takes the 2D mask, SDPA a 4D additive one
        if getattr(config, "_attn_implementation", "eager") == "sdpa":
            from transformers.modeling_attn_mask_utils import (
                _prepare_4d_attention_mask_for_sdpa,
            )

            return _prepare_4d_attention_mask_for_sdpa(
                attention_mask, hidden.dtype, tgt_len=hidden.shape[1]
            )
        return attention_mask
    return create_bidirectional_mask(
        config=config, inputs_embeds=hidden, attention_mask=attention_mask
    )
