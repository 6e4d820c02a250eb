"""Word count: the classic first flow.

Lines of text arrive on ``lines``; each word's running count is written to ``word-counts``
(key: the word, value: an 8-byte count). Run it with ``flows worker -A examples.wordcount``;
print its topology with ``flows topology -A examples.wordcount``.
"""

from __future__ import annotations

import flows

app = flows.App("wordcount")
lines = app.topic("lines", value_serde="str")
counts = app.topic("word-counts", key_serde="str", value_serde="int")

(
    app.stream(lines)
    .flat_map_values(lambda line: line.lower().split(), name="split")
    .group_by(lambda key, word: word, name="by-word", key_serde="str", value_serde="str")
    .count(name="counts")
    .to_stream(name="count-changes")
    .to(counts, name="write-counts")
)
