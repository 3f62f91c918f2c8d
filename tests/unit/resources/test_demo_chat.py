"""The bundled chat set for SFT reads as SFT data: bilingual, some multi-turn, every chat ending with an answer."""
import importlib.resources
import re

from tuneforge.config import DataConfig
from tuneforge.data.sft import read_chats


def test_demo_chat_set_is_valid_bilingual_sft_data():
    path = importlib.resources.files("tuneforge.resources.demo") / "chat.jsonl"
    chats = read_chats(str(path), DataConfig())  # roles and shape checked by the SFT reader
    assert 40 <= len(chats) <= 60
    chinese = sum(bool(re.search(r"[\u4e00-\u9fff]", c.messages[-1]["content"])) for c in chats)
    assert 0.3 * len(chats) < chinese < 0.6 * len(chats)
    assert sum(len([m for m in c.messages if m["role"] == "assistant"]) > 1 for c in chats) >= 5
    assert all(c.messages[-1]["role"] == "assistant" for c in chats)
    assert len({str(c.messages) for c in chats}) == len(chats)
