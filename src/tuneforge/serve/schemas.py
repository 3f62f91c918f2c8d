"""Request and response bodies of the HTTP API (pydantic); they are also what /docs and /openapi.json show.

Size limits (texts per request, characters per text) are server settings, checked by the app, so the answer is a
413 with a plain message rather than a schema error; the field descriptions name the defaults.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TEXTS_HELP = "Texts to process, at least one. Default limits: 64 texts, 2000 characters each (`--max-texts`, `--max-chars`)."


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": ["great battery life"]}]})
    texts: list[str] = Field(..., min_length=1, description=TEXTS_HELP)


class Prediction(BaseModel):
    label: str | list[str] = Field(..., description="The predicted label (a list of labels for multi-label models).")
    probabilities: dict[str, float] = Field(..., description="Probability per label (softmax; sigmoid for multi-label).")


class PredictResponse(BaseModel):
    predictions: list[Prediction] = Field(..., description="One per input text, in input order.")


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": ["a sentence"], "pooling": "mean"}]})
    texts: list[str] = Field(..., min_length=1, description=TEXTS_HELP)
    pooling: Literal["mean", "cls"] = Field("mean", description="mean: average of the last hidden state over tokens; "
                                                              "cls: the first token's vector.")
    role: Literal["query", "passage"] = Field("query", description="For models trained with prefixes (multilingual-"
                                      "e5-small): query puts \"query: \" before each text (questions, symmetric tasks "
                                      "such as similarity), passage puts \"passage: \" (the documents searched). Other "
                                      "models ignore it.")


class EmbedResponse(BaseModel):
    embeddings: list[list[float]] = Field(..., description="One vector per input text, in input order.")
    dim: int = Field(..., description="Length of each vector.")
    pooling: str


class TranslateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"texts": ["A man is riding a bike."]}]})
    texts: list[str] = Field(..., min_length=1, description=TEXTS_HELP + " An empty text gives an empty translation.")
    beams: int | None = Field(None, ge=1, description="Beam size; 1 is greedy decoding. Default 4; at most the "
                                                      "server's --max-beams (default 8).")
    max_new_tokens: int | None = Field(None, ge=1, description="Most target tokens per text. Default: about 1.5 × "
                                       "the source length + 10 (at most the model's positions); at most the server's "
                                       "--max-tokens.")
    length_penalty: float | None = Field(None, allow_inf_nan=False, description="Beam search: a hypothesis scores "
                                         "its log-probability / length ** length_penalty (default 1.0; > 1 favours "
                                         "longer outputs).")
    no_repeat_ngram: int | None = Field(None, ge=0, description="Forbid repeating any n-gram of this size in an "
                                                                "output (default 0 = off).")


class TranslateResponse(BaseModel):
    translations: list[str] = Field(..., description="One per input text, in input order (detokenised).")
    model: str = Field(..., description="The served model's name (as /v1/model reports it).")


class Health(BaseModel):
    status: str


class ModelInfo(BaseModel):
    name: str = Field(..., description="The run name (the folder above final/) or the model folder's name.")
    task: str = Field(..., description="classification; encoder for a model without a classification head; "
                                       "text-generation for a causal LM; translation (or seq2seq) for an "
                                       "encoder-decoder.")
    chat: bool | None = Field(None, description="Causal LMs: whether the tokenizer has a chat template (which "
                                                "/v1/chat/completions needs).")
    labels: list[str] = Field(..., description="Label names in output order (empty for encoders).")
    multi_label: bool
    backend: str = Field(..., description="pytorch or onnx.")
    version: str = Field(..., description="The TuneForge version serving the model.")
    created: str | None = Field(None, description="When the model folder was written (from tuneforge.json).")
    hashes: dict[str, str] = Field(..., description="sha256 of each weight file, plus config/data hashes from tuneforge.json.")
    max_length: int = Field(..., description="Tokens per text; longer texts are truncated. Causal LMs: the "
                                             "context (prompt plus generated tokens). Encoder-decoders: source "
                                             "tokens.")
    translation: dict | None = Field(None, description="Encoder-decoders: the decoding defaults and limits of "
                                     "/v1/translate (beams, max_beams, length_penalty, no_repeat_ngram, "
                                     "max_new_tokens (null: from the source length), max_new_tokens_limit, "
                                     "max_source_tokens).")
    manifest: dict = Field(..., description="tuneforge.json as written with the model (empty for plain HF folders).")


class ErrorBody(BaseModel):
    detail: str = Field(..., description="What went wrong, in one line.")
    request_id: str | None = Field(None, description="Also in the X-Request-ID header and the server log.")
