"""Prompts: chat messages rendered with the tokenizer's chat template, and prompt text turned into token ids that fit
the model's context. Every bad prompt is a UserError naming what is wrong and what to do."""
from __future__ import annotations

ROLES = ("system", "user", "assistant")


def chat_prompt(tokenizer, messages: list[dict], where: str = "messages") -> str:
    """The prompt text for `messages` (dicts with `role` in system/user/assistant and a string `content`), ending
    with the assistant's turn opened (add_generation_prompt). UserError for a bad message or a tokenizer without a
    chat template; `where` names the input in the message (a file and line)."""
    from tuneforge.errors import UserError

    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"{where}: this model's tokenizer has no chat template, so chat messages cannot be turned "
                        "into a prompt; pass plain text (--prompt/--raw, or rows with \"prompt\") or use a chat model.")
    if not isinstance(messages, list) or not messages:
        raise UserError(f"{where}: expected a non-empty list of {{\"role\": ..., \"content\": ...}} messages.")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise UserError(f"{where}[{i}]: expected an object with \"role\" and \"content\", "
                            f"got {type(msg).__name__}.")
        role = msg.get("role")
        if role not in ROLES:
            raise UserError(f"{where}[{i}]: unknown role {role!r}; use one of {', '.join(ROLES)}.")
        if not isinstance(msg.get("content"), str):
            raise UserError(f"{where}[{i}] ({role}): \"content\" must be a string.")
    if not any(m["content"].strip() for m in messages):
        raise UserError(f"{where}: every message is empty; give the model something to answer.")
    clean = [{"role": m["role"], "content": m["content"]} for m in messages]
    return tokenizer.apply_chat_template(clean, tokenize=False, add_generation_prompt=True)


def context_length(model) -> int | None:
    """The most positions the model can attend to (max_position_embeddings; GPT-2 calls it n_positions), None when
    the config does not say (e.g. pure rotary models without a limit)."""
    config = getattr(model, "config", model)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def prompt_ids(tokenizer, prompt: str, max_context: int | None, max_new_tokens: int = 0, where: str = "prompt",
               templated: bool = False) -> list[int]:
    """Token ids of `prompt`. A chat-templated prompt (`templated`) already holds its special tokens, so none are
    added. UserError when the prompt is empty or leaves fewer than `max_new_tokens` positions of `max_context`."""
    from tuneforge.errors import UserError

    if not isinstance(prompt, str):
        raise UserError(f"{where}: expected text, got {type(prompt).__name__}.")
    if not prompt.strip():
        raise UserError(f"{where}: the prompt is empty; give some text to continue.")
    ids = tokenizer(prompt, add_special_tokens=not templated)["input_ids"]
    if not ids:
        raise UserError(f"{where}: the prompt has no tokens; give some text to continue.")
    if max_context is not None and len(ids) + max_new_tokens > max_context:
        room = max_context - max_new_tokens
        if room < 1:
            raise UserError(f"{where}: max_new_tokens={max_new_tokens} leaves no room for a prompt in the model's "
                            f"context of {max_context} tokens; lower --max-new-tokens.")
        raise UserError(f"{where}: the prompt is {len(ids)} tokens, and with max_new_tokens={max_new_tokens} it "
                        f"exceeds the model's context of {max_context} tokens; shorten it to at most {room} tokens "
                        "or lower --max-new-tokens.")
    return list(ids)
