"""The fine-tuning config schema. Groups follow cramming: what (data, model), how (train, eval), where (runtime).

`None` means "auto": the value is chosen from the model and data size by `train.defaults.resolve_auto`
and written into the run's resolved `config.yaml`. Changing `runtime` never changes the science.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tuneforge.config.levers import LEVERS, parse_levers


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    train: str | None = Field(None, description="Training data: CSV, TSV, JSONL, Parquet file or a saved `datasets` folder.")
    validation: str | None = Field(None, description="Validation data (same formats). Split off train when absent.")
    test: str | None = Field(None, description="Test data (same formats). Split off train when absent.")
    text_column: str = Field("text", description="Column holding the input text; comma-separated alternatives (`text,sentence`) take the first each file has.")
    label_column: str = Field("label", description="Column holding the label: a string, an int, or a list of labels (multi-label).")
    multi_label: bool | None = Field(None, description="Multi-label task. Auto: true when labels are lists or `label_separator` is set.")
    label_separator: str | None = Field(None, description="Split string labels on this separator into a label list (e.g. '|'), making the task multi-label.")
    validation_fraction: float = Field(0.1, gt=0, lt=0.5, description="Share of train held out for validation when no validation file is given.")
    test_fraction: float = Field(0.1, ge=0, lt=0.5, description="Share of train held out for test when no test file is given (0 = no test split).")
    split_seed: int = Field(13, description="Seed of the stratified split.")
    max_length: int = Field(128, ge=8, le=8192, description="Truncate texts to this many tokens. SFT: tokens per example and per packed row; left unset, an SFT run uses 512.")
    normalize: bool = Field(True, description="Unicode NFKC and whitespace clean-up of texts before tokenizing.")
    check: bool = Field(True, description="Quick data check before training: exact duplicates, label conflicts and validation/test texts that also occur in train (leakage); counts go to the log and the report. `tuneforge data check` runs the full check.")
    redact_pii: bool = Field(False, description="Replace personal data (e-mails, phones, China ID numbers, cards, IPs, URLs, IBANs) with typed placeholders such as [EMAIL] before training; counts per type go to the report.")
    # --- task sft (instruction tuning); classification ignores these
    prompt_column: str = Field("prompt", description="SFT: column holding the prompt (with `response_column`), when the data has no `messages_column`.")
    response_column: str = Field("response", description="SFT: column holding the reference response; the loss is on its tokens only.")
    messages_column: str = Field("messages", description="SFT: column holding a chat as a list of {role, content} (roles system, user, assistant; JSON text in CSV); the loss is on every assistant turn.")
    packing: bool = Field(True, description="SFT: pack several examples into each row of `max_length` tokens (each attends only to itself, positions restart), instead of one padded example per row.")
    # --- tasks translation and seq2seq (parallel text); other tasks ignore these
    source_column: str = Field("source", description="translation/seq2seq: column holding the source text in a table or JSONL file.")
    target_column: str = Field("target", description="translation/seq2seq: column holding the target text (the reference).")
    source_lang: str | None = Field(None, description="translation: source language code (e.g. en). With `target_lang`, `train`/`validation`/`test` may name a file prefix: PREFIX.en and PREFIX.de, two line-aligned plain-text files.")
    target_lang: str | None = Field(None, description="translation: target language code (e.g. de).")
    source_file: str | None = Field(None, description="translation/seq2seq: training source sentences, one per line, line-aligned with `target_file` (instead of `train`).")
    target_file: str | None = Field(None, description="translation/seq2seq: training target sentences, one per line, line-aligned with `source_file`.")
    validation_source_file: str | None = Field(None, description="translation/seq2seq: validation source file, line-aligned with `validation_target_file`.")
    validation_target_file: str | None = Field(None, description="translation/seq2seq: validation target file.")
    test_source_file: str | None = Field(None, description="translation/seq2seq: test source file, line-aligned with `test_target_file`.")
    test_target_file: str | None = Field(None, description="translation/seq2seq: test target file.")
    max_target_length: int | None = Field(None, ge=4, le=8192, description="translation/seq2seq: most target tokens per pair. Auto: `max_length`. Training pairs longer on either side are left out and counted; validation and test pairs are kept (the source is cut, the reference stays whole).")


class ModelConfig(_Strict):
    name: str = Field("auto", description="auto, an alias (minilm-l6, multilingual-e5-small), a local Hugging Face model folder, or a hub id (needs network). auto (classification): multilingual-e5-small when more than 5% of the training text's letters are not Latin, minilm-l6's tokenizer maps more than `unk_threshold` of its tokens to [UNK], or the text is Latin-script but not English; else minilm-l6 (docs/models.md). The run prints the choice and why. With --task sft: smollm2-135m (a causal LM).")
    auto_reason: str | None = Field(None, description="Set by the run when it chose `name` itself: why, kept in config.yaml as a record (leave it unset).")
    extend_vocab: Literal["auto", "never", "always"] = Field(
        "auto", description="Add the characters/words the tokenizer maps to [UNK] as new tokens. auto: when the [UNK] rate exceeds `unk_threshold`.")
    unk_threshold: float = Field(0.02, ge=0, le=1, description="[UNK] token rate above which the coverage warning (and auto vocab extension) fires.")
    max_new_tokens: int = Field(8000, ge=0, description="Upper bound on tokens added by vocabulary extension.")
    preset: Literal["tiny", "mini", "small", "base"] | None = Field(None, description="translation/seq2seq: train an encoder-decoder from scratch with this size preset (MBart architecture: pre-norm, shared embeddings; sizes in docs/models.md). Auto (model.name auto): chosen from the number of training pairs.")
    tokenizer: str | None = Field(None, description="translation/seq2seq from scratch: a tokenizer folder (`tuneforge tokenizer train --type seq2seq`). Default: one joint BPE tokenizer (SentencePiece-style) trained on the training source and target text.")
    vocab_size: int | None = Field(None, ge=100, le=1_000_000, description="translation/seq2seq from scratch: size of the joint tokenizer trained for the run. Auto: by data size.")


class TrainBase(_Strict):
    """How to optimise, for every objective: the stop rules, the batch, AdamW and its schedule, the seed."""
    epochs: float | None = Field(None, gt=0, description="Passes over the training data. Auto: chosen from the data size (see docs/defaults.md).")
    max_steps: int | None = Field(None, gt=0, description="Stop after this many optimizer steps (overrides epochs when smaller).")
    max_tokens: int | None = Field(None, gt=0, description="Stop after this many training tokens.")
    budget_minutes: float | None = Field(None, gt=0, description="Wall-clock budget; training stops (and saves) when it runs out, and the learning-rate schedule decays to 0 at whichever stop comes first.")
    batch_size: int | None = Field(None, gt=0, description="Global batch size (across processes and accumulation). Auto: by data size.")
    grad_accum_steps: int = Field(1, ge=1, description="Micro-batches accumulated per optimizer step (the batch is split into them).")
    learning_rate: float | None = Field(None, gt=0, description="Peak learning rate. Auto: by model size and data size.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not applied to biases and LayerNorm).")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of training (by the binding stop rule) with linear warm-up; then linear decay to 0.")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Gradient clipping norm (null = off).")
    seed: int = Field(42, description="Seed for init, dropout, masking and batch order.")


class TrainConfig(TrainBase):
    batch_tokens: int | None = Field(None, gt=0, description="translation/seq2seq: tokens per batch (source + target, padding included), instead of a number of rows: pairs of similar length are batched together. Auto: by model size.")
    label_smoothing: float = Field(0.1, ge=0, lt=1, description="translation/seq2seq: label smoothing of the token loss (training only; the held-out loss is plain cross-entropy).")
    average_checkpoints: int = Field(5, ge=0, description="translation/seq2seq: at the end, average the weights of the last K evaluation checkpoints and keep the average when it scores at least as well on validation as the best single checkpoint (0 or 1 = off).")
    class_weights: Literal["none", "balanced"] | list[float] = Field(
        "none", description="Loss weights per class: none, balanced (inverse frequency) or an explicit list in label order.")
    early_stopping_patience: int | None = Field(None, ge=0, description="Stop after this many evaluations without improvement (0 = off). Auto: 3.")
    contrastive: Literal["auto", "on", "off"] = Field(
        "off", description="Few-row classification, SetFit-style: tune the encoder on sentence pairs (same label → cosine 1, different → 0) and fit the classifier head by logistic regression, instead of end-to-end fine-tuning (docs/defaults.md has the measurements). on, off (the default, until measured on more data), or auto: on for single-label data with at most 500 training rows, an encoder whose head reads its pooler (BERT, multilingual-e5-small), one process.")
    contrastive_pairs: int | None = Field(None, gt=0, description="train.contrastive: sentence pairs drawn (half same-label, half not). Auto: a same-label and an other-label pair per training row, for up to 20 rounds (SetFit's 20 iterations) within 10,000 pairs, and at least one round.")

    @field_validator("contrastive", mode="before")
    @classmethod
    def _yaml_switch(cls, value):
        # YAML 1.1 (and `--set train.contrastive=on`) reads on/off as true/false.
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


class EvalConfig(_Strict):
    every_steps: int | None = Field(None, gt=0, description="Evaluate (and checkpoint) every N steps. Auto: every epoch, or ~4 times an epoch on large data.")
    metric: Literal["auto", "accuracy", "macro_f1", "micro_f1", "loss", "bleu"] = Field(
        "auto", description="Metric for best-checkpoint selection and early stopping. Auto: accuracy (single-label), micro_f1 (multi-label), loss (sft: held-out loss on the response tokens; seq2seq), bleu (translation: sacreBLEU of greedy translations of `bleu_samples` validation sentences).")
    batch_size: int = Field(128, gt=0, description="Batch size for evaluation and prediction (on CPU an evaluation batch also holds at most 4,096 padded tokens: long texts come in smaller batches).")
    calibrate: bool = Field(True, description="Fit a softmax temperature on validation (single-label), store it in the model and use it at predict time; the report shows calibration before and after.")
    baseline: bool = Field(True, description="Train a TF-IDF + logistic regression baseline on the same split and show it beside the transformer in the report.")
    bootstrap_samples: int = Field(1000, ge=0, description="Bootstrap resamples for the 95% confidence intervals in the report (0 = off).")
    generate_samples: int = Field(50, ge=0, description="SFT: how many prompts of the report split get a generated answer (greedy) for exact match, label accuracy, ROUGE-L and the side-by-side table (0 = none).")
    max_new_tokens: int | None = Field(None, gt=0, description="SFT: most tokens generated per prompt. Auto: the longest training response in tokens plus 8 (at most 256).")
    beams: int = Field(4, ge=1, le=64, description="translation/seq2seq: beam size of the final translations of validation and test (1 = greedy).")
    length_penalty: float = Field(1.0, description="translation/seq2seq: beam score = log-probability / length ** length_penalty.")
    no_repeat_ngram: int = Field(0, ge=0, description="translation/seq2seq: forbid repeating any n-gram of this size in an output (0 = off).")
    bleu_samples: int = Field(500, ge=0, description="translation/seq2seq: validation sentences translated greedily at each evaluation for the BLEU curve (and for eval.metric bleu); 0 = held-out loss only.")
    labels: list[str] | None = Field(None, description="SFT: the answer set for label accuracy (e.g. [positive, negative]). Auto: the distinct training responses, when there are at most 20 and each occurs at least twice on average.")


class RuntimeConfig(_Strict):
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="Device. auto: GPU when present, else CPU.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description="Mixed precision. auto: bf16 where the hardware computes it natively (a bf16-capable GPU, or a CPU with avx512_bf16 or AMX: 1.4-1.6x faster fine-tuning at the same SST-2 accuracy within seed noise, measured), else fp32. The run prints and config.yaml records the choice.")
    threads: int | None = Field(None, gt=0, description="CPU threads for torch (default: all cores, split across processes).")
    levers: str = Field("all", description=f"Speed levers: all, none (the stock transformers/PyTorch computation), a comma list to turn on, or all,-name to turn one off. Levers: {', '.join(LEVERS)} (docs/architecture.md says what each does).")
    keep_checkpoints: int = Field(2, ge=1, description="How many recent checkpoints to keep (the best model is kept separately).")
    log_every_steps: int = Field(10, gt=0, description="Write a training-loss line to metrics.jsonl every N steps.")
    progress: bool = Field(True, description="Show a progress bar.")

    @field_validator("levers")
    @classmethod
    def _known_levers(cls, value: str) -> str:
        parse_levers(value)
        return value

    def lever(self, name: str) -> bool:
        """Whether speed lever `name` (one of config.levers.LEVERS) is on."""
        assert name in LEVERS, name
        return name in parse_levers(self.levers)


class TrackingConfig(_Strict):
    """Where a run's config, metrics and outputs are also reported (never changes results): TensorBoard, MLflow."""
    report_to: list[Literal["tensorboard", "mlflow"]] = Field([], description="Experiment trackers that also receive the run's resolved config, every metrics.jsonl record (train loss, validation metrics, samples/s, tokens/s, RSS) and, for MLflow, the report and final/ as artifacts: tensorboard (event files in the run's tensorboard/ folder), mlflow (the server at $MLFLOW_TRACKING_URI, else a local SQLite store, mlflow.db beside the run folder). A comma list (--report-to tensorboard,mlflow); none = no tracker. A tracker that cannot be reached is reported once and left out; training goes on.")
    project: str = Field("tuneforge", min_length=1, description="MLflow experiment the run is logged under ($MLFLOW_EXPERIMENT_NAME takes precedence, as in MLflow).")
    run_name: str | None = Field(None, description="MLflow run name. Default: the run folder's name.")
    log_model: bool = Field(True, description="MLflow: upload final/ (the model folder) as artifacts at the end; false: only the report, config.yaml, metrics.jsonl and summary.json.")

    @field_validator("report_to", mode="before")
    @classmethod
    def _comma_list(cls, value):
        """`tensorboard,mlflow` (the CLI flag, --set) → a list; `none` or an empty string → no tracker."""
        if value is None:
            return []
        if isinstance(value, str):
            value = [v.strip().lower() for v in value.split(",") if v.strip()]
        if isinstance(value, (list, tuple)) and [str(v).lower() for v in value] == ["none"]:
            return []
        return list(dict.fromkeys(value)) if isinstance(value, (list, tuple)) else value


class LoraConfig(_Strict):
    """SFT with LoRA adapters (peft): the base model stays frozen; low-rank updates train in the target modules."""
    enabled: bool = Field(False, description="Train LoRA adapters instead of every weight (--lora).")
    rank: int = Field(8, ge=1, le=1024, description="Rank r of each low-rank update.")
    alpha: float = Field(16.0, gt=0, description="Scaling numerator: an update is multiplied by alpha / rank.")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the adapter input.")
    target_modules: list[str] | None = Field(None, description="Module names to adapt (e.g. [q_proj, v_proj]). Auto: the attention and MLP projections of the model type.")
    merge: bool = Field(False, description="Merge the trained adapters into the base weights, so final/ is a plain model folder (else final/ holds the adapter and names its base).")


class FinetuneConfig(_Strict):
    task: Literal["classification", "sft", "translation", "seq2seq"] = Field("classification", description="Task type: classification (encoder + head), sft (instruction tuning of a causal LM on prompt/response or messages data), translation (an encoder-decoder on parallel text, scored with sacreBLEU), or seq2seq (the same for other text-to-text pairs, e.g. summarisation).")
    output: str = Field("runs/finetune", description="Run folder: config.yaml, metrics.jsonl, checkpoints/, final/, report/.")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)


# --- Pretraining (masked-LM). Same groups: what (data, tokenizer, model, mlm), how (train, eval), where (runtime).

class CorpusConfig(_Strict):
    corpus: list[str] = Field(default_factory=list, description="Unlabelled text: .txt (one text per line), JSONL/CSV/Parquet or `datasets` folders; globs allowed.")
    text_column: str = Field("text", description="Column holding the text in JSONL/CSV/Parquet/`datasets` sources.")
    normalize: bool = Field(True, description="Unicode NFKC, control characters removed, whitespace collapsed.")
    dedup: bool = Field(True, description="Drop exact duplicate lines (after cleaning).")
    min_chars: int = Field(10, ge=1, description="Drop texts shorter than this many characters (after cleaning).")
    max_chars: int | None = Field(None, gt=0, description="Drop texts longer than this many characters (null = no limit).")
    redact_pii: bool = Field(False, description="Replace personal data with typed placeholders ([EMAIL], [PHONE] ...) while cleaning.")
    block_size: int = Field(128, ge=16, le=8192, description="Tokens per packed training block (mlm: [CLS] + texts joined by [SEP]; clm: texts joined by the EOS token). At most the model's positions.")
    validation_fraction: float = Field(0.02, gt=0, lt=0.5, description="Share of blocks held out for the held-out loss / perplexity.")
    max_validation_blocks: int = Field(500, ge=1, description="Upper bound on held-out blocks (keeps evaluation quick).")
    cache_dir: str | None = Field(None, description="Tokenized-corpus cache, keyed by content hash. Default: $TUNEFORGE_CACHE or ~/.cache/tuneforge.")


class TokenizerConfig(_Strict):
    path: str | None = Field(None, description="Tokenizer folder to use. Default: the model's own (continued) or one trained on the corpus (from scratch).")
    type: Literal["wordpiece", "bpe", "unigram", "gpt", "seq2seq"] = Field("wordpiece", description="Tokenizer family to train: wordpiece (BERT), bpe (byte-level, RoBERTa), unigram (SentencePiece, ALBERT), gpt (byte-level BPE with one special, <|endoftext|>, as GPT-2), seq2seq (SentencePiece-style BPE for encoder-decoders, one joint vocabulary, as Marian: cased unless `lowercase` is set, </s> ends every text; <pad> </s> <unk> <s> take ids 0-3). `pretrain --objective clm` trains gpt unless this is set.")
    vocab_size: int = Field(8000, ge=100, le=1_000_000, description="Vocabulary size of a trained tokenizer.")
    lowercase: bool = Field(True, description="Lowercase text in the tokenizer's normaliser. `pretrain --objective clm` keeps case (false) unless this is set: a generative model should write capitals.")
    strip_accents: bool | None = Field(None, description="Strip accents (é → e). Auto: same as `lowercase`, as BERT does.")
    min_frequency: int = Field(2, ge=1, description="Minimum count for a merge / piece to enter the vocabulary.")


class PretrainModelConfig(_Strict):
    name: str | None = Field(None, description="Continue pretraining this model: an encoder for mlm (alias minilm-l6, local folder or hub id), a causal LM for clm (alias smollm2-135m or a local GPT-2/Llama/Qwen... folder). Its tokenizer is kept.")
    preset: Literal["tiny", "mini", "small", "medium", "base"] | None = Field(
        None, description="Pretrain from scratch with a size preset: BERT miniatures for mlm, GPT-style (Llama architecture) for clm; see `tuneforge inspect PRESET`.")
    max_position: int = Field(512, ge=16, description="Position embeddings of a from-scratch model.")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout of a from-scratch model: hidden and attention (mlm; short budgets learn faster with 0), attention only (clm: the Llama architecture has no other), where `--objective clm` uses 0 unless this is set.")
    norm: Literal["post", "pre"] = Field(
        "post", description="mlm only: LayerNorm placement of a from-scratch model. post: BERT. pre: RoBERTa-PreLayerNorm (LayerNorm before each sublayer; stable at higher learning rates). Both load with AutoModelForMaskedLM. (clm presets are pre-norm, RMSNorm.)")


class MlmConfig(_Strict):
    """Masked-LM only: setting any of these with `objective: clm` is an error."""
    mask_rate: float = Field(0.15, gt=0, lt=1, description="Share of tokens selected for prediction (80% [MASK], 10% random, 10% kept).")
    whole_word: Literal["auto"] | bool = Field(
        "auto", description="Mask all tokens of a word together: the tokenizer's words (WordPiece ## pieces, SentencePiece ▁ words), Chinese words found by jieba. auto: on when at least 5% of the corpus's letters are Han (not Japanese); the run prints and config.yaml records the choice.")
    document_attention: bool = Field(True, description="Each packed text attends only to itself, with positions restarted per text (as in fine-tuning), instead of to every text in its block.")


class ClmConfig(_Strict):
    """Causal-LM only: setting any of these with `objective: mlm` is an error."""
    document_attention: bool = Field(True, description="Each packed text attends only to itself, with positions restarted per text, and no loss crosses a text boundary (a text's first token is not predicted from the text before it). false: each block is one causal sequence, as GPT-2 was trained.")
    samples: int = Field(4, ge=0, le=64, description="Greedy continuations shown in the report at the end: the first words of this many held-out texts, and what the model writes after them (0 = none).")
    sample_tokens: int = Field(32, ge=1, le=1024, description="New tokens per report sample.")


class PretrainTrainConfig(TrainBase):
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="Share of training (by the binding stop rule) with linear warm-up; then linear decay to 0.")


class PretrainEvalConfig(_Strict):
    every_steps: int | None = Field(None, gt=0, description="Held-out evaluation (and checkpoint) every N steps. Auto: ~10 per run, at most every 100 steps.")
    batch_size: int = Field(64, gt=0, description="Blocks per evaluation batch.")


class PretrainConfig(_Strict):
    objective: Literal["mlm", "clm"] = Field("mlm", description="Pretraining objective: mlm (masked-LM, BERT-style encoders) or clm (causal LM: next-token prediction, GPT-style generative models).")
    output: str = Field("runs/pretrain", description="Run folder: config.yaml, metrics.jsonl, checkpoints/, final/, report/.")
    data: CorpusConfig = Field(default_factory=CorpusConfig)
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    model: PretrainModelConfig = Field(default_factory=PretrainModelConfig)
    mlm: MlmConfig = Field(default_factory=MlmConfig)
    clm: ClmConfig = Field(default_factory=ClmConfig)
    train: PretrainTrainConfig = Field(default_factory=PretrainTrainConfig)
    eval: PretrainEvalConfig = Field(default_factory=PretrainEvalConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)


class PipelineConfig(_Strict):
    output: str = Field("runs/pipeline", description="Pipeline folder; stages write to pretrain/, finetune/ and evaluate/ inside it.")
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    evaluate: list[str] = Field(default_factory=list, description="Extra labelled files to evaluate the fine-tuned model on.")
