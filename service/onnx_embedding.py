"""The embedder on ONNX Runtime: the sentence-transformers model exported once, locally, to ONNX
(optionally with int8 weights) and run without torch at query time.

sentence-transformers' own ``backend="onnx"`` needs optimum-onnx, which pins transformers < 4.58
and so cannot be installed beside sentence-transformers 6; the export here is torch's own.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .embedding import SortedBatches, load_sentence_transformer, resolve_model_path
from .errors import FootnoteError

EXPORT_VERSION = 2
CONFIG = "footnote-onnx.json"


def _fingerprint(model_path: str, quantize: bool) -> str:
    """Changes when the source model's files do, so an edited model is exported again."""
    digest = hashlib.sha256(f"{EXPORT_VERSION}:{quantize}:{Path(model_path).resolve()}".encode())
    root = Path(model_path)
    if root.is_dir():
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            stat = path.stat()
            digest.update(f"{path.relative_to(root)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def export(name: str, target: Path, quantize: bool) -> None:
    """Export model ``name`` (its sentence embedding: transformer, pooling, normalization) to
    ``target``/model.onnx with its tokenizer; int8 weights with ``quantize``."""
    import torch

    model = load_sentence_transformer(name, "cpu", model_kwargs={"attn_implementation": "eager"})
    sample = model.preprocess(["a short text", "and a somewhat longer second text"])
    inputs = [k for k, v in sample.items() if isinstance(v, torch.Tensor)]
    constants = {k: v for k, v in sample.items() if k not in inputs}  # e.g. modality="text"

    class Embedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model({**dict(zip(inputs, tensors)), **constants})["sentence_embedding"]

    fp32 = target / ("model-fp32.onnx" if quantize else "model.onnx")
    # The exporter's warnings (legacy exporter, advanced indexing) are about graphs unlike this one.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Embedding().eval(), tuple(sample[k] for k in inputs), str(fp32),
            input_names=inputs, output_names=["embedding"], opset_version=17, dynamo=False,
            dynamic_axes={**{k: {0: "batch", 1: "tokens"} for k in inputs}, "embedding": {0: "batch"}},
        )
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # Per channel: mean cosine 0.99 to the fp32 vectors on the seed articles; 0.96-0.98 per tensor.
        quantize_dynamic(str(fp32), str(target / "model.onnx"), weight_type=QuantType.QInt8, per_channel=True)
        fp32.unlink()
    tokenizer = model.tokenizer
    tokenizer.backend_tokenizer.save(str(target / "tokenizer.json"))  # the Rust tokenizer: no transformers at run time
    config = {"inputs": inputs, "max_tokens": int(model.max_seq_length or 0),
              "dimension": int(model.get_embedding_dimension() or 0), "source": name, "int8": quantize,
              "pad_token": tokenizer.pad_token, "pad_id": tokenizer.pad_token_id}
    (target / CONFIG).write_text(json.dumps(config, indent=2))


def ensure_export(name: str, directory: Path, quantize: bool) -> Path:
    """The exported model's folder, exporting it first if needed. The export is written to a
    temporary folder and renamed into place, so a crash or a concurrent export leaves no half."""
    path = resolve_model_path(name)
    folder = directory / f"{Path(path).name}-{'int8' if quantize else 'fp32'}-{_fingerprint(path, quantize)}"
    if (folder / CONFIG).is_file():
        return folder
    directory.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=directory, prefix=".export-"))
    try:
        export(name, work, quantize)
        try:
            os.rename(work, folder)
        except OSError:  # another process finished first; its export is as good
            if not (folder / CONFIG).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder


def _tokenizer(tokenizer_class: Any, folder: Path, config: dict[str, Any]) -> Any:
    tokenizer = tokenizer_class.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(config["max_tokens"])
    tokenizer.enable_padding(pad_id=config["pad_id"], pad_token=config["pad_token"])
    return tokenizer


class OnnxEmbedder(SortedBatches):
    """Same vectors as ``SentenceTransformerEmbedder`` (fp32: within 1e-6; int8: close, but a
    different model as far as the index is concerned, so it carries its own name)."""

    def __init__(self, name: str, directory: Path, quantize: bool = False, batch_size: int = 32) -> None:
        super().__init__(batch_size)
        self.source = name
        self.name = f"{name} (onnx int8)" if quantize else name
        self.directory = directory
        self.quantize = quantize
        self._session: Any = None
        self._tokenizer: Any = None
        self._config: dict[str, Any] = {}
        self._folder: Path | None = None
        self._twin_of: OnnxEmbedder | None = None

    def twin(self) -> OnnxEmbedder:
        """Another embedder over the same ONNX session (its runs are thread-safe) with a tokenizer
        and a lock of its own: documents and questions are encoded side by side, so an ingest never
        holds what a question waits for, and the model is in memory once."""
        twin = OnnxEmbedder(self.source, self.directory, self.quantize, self.batch_size)
        twin._twin_of = self
        return twin

    def _load(self) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if self._twin_of is not None:
            self._twin_of.warm_up()
            origin = self._twin_of
            assert origin._folder is not None
            self._config, self._session, self._folder = origin._config, origin._session, origin._folder
            self._tokenizer = _tokenizer(Tokenizer, origin._folder, origin._config)
            return
        try:
            folder = ensure_export(self.source, self.directory, self.quantize)
        except FootnoteError:
            raise
        except Exception as exc:  # noqa: BLE001 - torch's exporter fails in many ways on unusual models
            raise FootnoteError(
                f"cannot export embedding model {self.source!r} to ONNX ({exc}): "
                "set FOOTNOTE_EMBEDDING_BACKEND=torch"
            ) from exc
        config = json.loads((folder / CONFIG).read_text())
        self._config, self._tokenizer, self._folder = config, _tokenizer(Tokenizer, folder, config), folder
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle threads sleep instead of spinning: spinning took the cores from the FAISS and
        # BM25 work that follows each question (floor 14.5 -> 9.0 ms on SQuAD, 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )

    @property
    def dimension(self) -> int:
        self.warm_up()
        return int(self._config["dimension"])

    @property
    def max_tokens(self) -> int:
        self.warm_up()
        return int(self._config["max_tokens"])

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = []
        for i in range(0, len(texts), self.batch_size):
            # Stripped, as sentence-transformers does before tokenizing.
            encodings = self._tokenizer.encode_batch([t.strip() for t in texts[i : i + self.batch_size]])
            columns = {
                "input_ids": [e.ids for e in encodings], "attention_mask": [e.attention_mask for e in encodings],
                "token_type_ids": [e.type_ids for e in encodings],
            }
            feed = {k: np.array(columns[k], dtype=np.int64) for k in self._config["inputs"]}
            out.append(self._session.run(None, feed)[0])
        vectors = np.vstack(out).astype(np.float32)
        # Normalized in the graph already; again here so int8 rounding cannot leave them off unit length.
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
