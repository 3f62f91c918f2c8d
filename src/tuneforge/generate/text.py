"""Token ids → text while a sequence grows: incremental detokenisation that never emits half a UTF-8 character, and
stop strings found in the new tail only, trimmed, with any text that could be the start of a stop string held back
until it is known not to be one."""
from __future__ import annotations

# Prompt tokens decoded with the first new tokens: SentencePiece-style tokenizers drop a word's leading space at the
# start of a decode, so the first word would lose its space without a little context before it.
CONTEXT_TOKENS = 4
REPLACEMENT = "\ufffd"  # what a decode shows for bytes that are not (yet) a whole character
MAX_HELD = 4


class Detokenizer:
    """Decodes a window of recent ids and emits what the newest id added (the approach of text-generation-inference):
    text ending in U+FFFD is an unfinished multi-byte character and waits for the next id."""

    def __init__(self, tokenizer, prompt_ids: list[int]):
        self.tokenizer = tokenizer
        self.ids = list(prompt_ids[-CONTEXT_TOKENS:])
        self.prefix = 0  # window start: decoding from here gives the text already emitted (read) and more
        self.read = len(self.ids)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def add(self, token_id: int) -> str:
        self.ids.append(token_id)
        before = self._decode(self.ids[self.prefix:self.read])
        after = self._decode(self.ids[self.prefix:])
        # A character is at most 4 bytes: a window still unfinished after MAX_HELD ids holds invalid bytes for good.
        if len(after) > len(before) and (not after.endswith(REPLACEMENT) or len(self.ids) - self.read > MAX_HELD):
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before):]
        return ""

    def flush(self) -> str:
        """What is still held at the end of the sequence (an unfinished character shows as U+FFFD)."""
        before = self._decode(self.ids[self.prefix:self.read])
        after = self._decode(self.ids[self.prefix:])
        self.prefix = self.read = len(self.ids)
        return after[len(before):]


class TextTracker:
    """One sequence's text: `push(token_id)` → (text to emit now, stopped). The emitted pieces concatenate to the
    final text, which ends before the first stop string."""

    def __init__(self, tokenizer, prompt_ids: list[int], stop: tuple[str, ...] = ()):
        self.detok = Detokenizer(tokenizer, prompt_ids)
        self.stop = tuple(stop)
        self.longest = max((len(s) for s in self.stop), default=0)
        self.text = ""
        self.sent = 0

    def push(self, token_id: int) -> tuple[str, bool]:
        return self._take(self.detok.add(token_id))

    def finish(self) -> tuple[str, bool]:
        """The rest of the text when the sequence ends for another reason (EOS, length, cancel)."""
        delta, stopped = self._take(self.detok.flush())
        rest = self.text[self.sent:]  # text held back as a possible stop-string start is final now
        self.sent = len(self.text)
        return delta + rest, stopped

    def _take(self, piece: str) -> tuple[str, bool]:
        if not piece:
            return "", False
        # A stop string that ends in the new piece starts at most longest-1 characters before it.
        start = max(0, len(self.text) - self.longest + 1)
        self.text += piece
        if self.stop:
            hits = [i for i in (self.text.find(s, start) for s in self.stop) if i >= 0]
            if hits:
                self.text = self.text[:min(hits)]
                return self._emit(len(self.text)), True
        return self._emit(len(self.text) - self._held()), False

    def _held(self) -> int:
        """Length of the longest tail of the text that is the start of a stop string (it may yet become one)."""
        for k in range(min(self.longest - 1, len(self.text)), 0, -1):
            tail = self.text[-k:]
            if any(s.startswith(tail) for s in self.stop):
                return k
        return 0

    def _emit(self, upto: int) -> str:
        upto = max(upto, self.sent)
        delta = self.text[self.sent:upto]
        self.sent = upto
        return delta


def check_stops(tokenizer, stop: tuple[str, ...]) -> None:
    """UserError for a stop string this tokenizer can never produce (its text does not survive encode → decode:
    characters outside the vocabulary, or case an uncased tokenizer lowercases): generation would run to
    max_new_tokens every time while the user waits for a stop."""
    from tuneforge.errors import UserError

    for s in stop:
        core = s.strip()
        if not core:
            continue  # whitespace-only stops ("\n\n") survive any tokenizer that keeps whitespace
        back = tokenizer.decode(tokenizer(s, add_special_tokens=False)["input_ids"], skip_special_tokens=True)
        if core not in back:
            raise UserError(f"stop string {s!r} can never be generated by this model's tokenizer (it comes back as "
                            f"{back!r}); use text the model can write, or drop --stop.")
