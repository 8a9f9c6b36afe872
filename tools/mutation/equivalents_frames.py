"""Equivalent mutants of frames.py (see python_equivalents.py).

Every survivor of the last run that no test can tell apart, each reviewed; the
others are killed by tests (notes of this module in python_equivalents.py that are
not repeated here are of mutants a test now kills)."""

from __future__ import annotations

#: mutant name -> (a fragment of its diff's mutated line, why no test can tell it apart)
EQUIVALENT: dict[str, tuple[str, str]] = {
    "phantom_notebook.notebook.frames.x__add_progress__mutmut_9": (
        "pipeline(transaction=None)",
        "a read-only pipeline: wrapped in MULTI/EXEC or not, the replies are the same"),
    "phantom_notebook.notebook.frames.x__add_progress__mutmut_10": (
        "pipeline(transaction=True)",
        "a read-only pipeline: wrapped in MULTI/EXEC or not, the replies are the same"),
    "phantom_notebook.notebook.frames.x__add_progress__mutmut_27": (
        "strict=None)",
        "a pipeline returns one reply per command: the zip's lengths always agree"),
    "phantom_notebook.notebook.frames.x__add_progress__mutmut_30": (
        "pipe.execute(), )",
        "a pipeline returns one reply per command: the zip's lengths always agree"),
    "phantom_notebook.notebook.frames.x__add_progress__mutmut_31": (
        "strict=False)",
        "a pipeline returns one reply per command: the zip's lengths always agree"),
    "phantom_notebook.notebook.frames.x__audit_ms__mutmut_13": (
        "(stamp.tzinfo is None) and False",
        "a naive Timestamp's .value counts from the epoch as if UTC: localizing to UTC keeps it"),
    "phantom_notebook.notebook.frames.x__audit_ms__mutmut_15": (
        "tz_localize(None)",
        "a naive Timestamp's .value counts from the epoch as if UTC: localizing to UTC keeps it"),
    "phantom_notebook.notebook.frames.x__audit_ms__mutmut_17": (
        'tz_localize("utc")',
        "time zone names are case-insensitive to pandas: utc is UTC"),
    "phantom_notebook.notebook.frames.x__audit_ms__mutmut_24": (
        'entry_id.rpartition("-")[0]',
        "a stream id holds one '-': both cut at it"),
    "phantom_notebook.notebook.frames.x__entry_order__mutmut_3": (
        'sid.rpartition("-")',
        "a stream id holds one '-': both cut at it"),
    "phantom_notebook.notebook.frames.x__entry_order__mutmut_7": (
        "int(ms or 1)",
        "a stream id always has its milliseconds part"),
    "phantom_notebook.notebook.frames.x__entry_order__mutmut_10": (
        "int(seq or 1)",
        "a stream id always has its sequence part"),
    "phantom_notebook.notebook.frames.x__pending__mutmut_17": (
        '"NOGROUP" in str(exc) and "no such key"',
        "the missing-group error says both NOGROUP and 'No such key': either test decides alone"),
    "phantom_notebook.notebook.frames.x__pending__mutmut_18": (
        '"XXNOGROUPXX" in str(exc)',
        "the missing-group error says both NOGROUP and 'No such key': either test decides alone"),
    "phantom_notebook.notebook.frames.x__pending__mutmut_19": (
        '"nogroup" in str(exc)',
        "the missing-group error says both NOGROUP and 'No such key': either test decides alone"),
    "phantom_notebook.notebook.frames.x__pending__mutmut_21": (
        '"NOGROUP" in str(None)',
        "the missing-group error says both NOGROUP and 'No such key': either test decides alone"),
    "phantom_notebook.notebook.frames.x__pending__mutmut_22": (
        '"XXno such keyXX"',
        "the missing-group error says both NOGROUP and 'No such key': either test decides alone"),
    "phantom_notebook.notebook.frames.x__pending__mutmut_23": (
        '"NO SUCH KEY"',
        "the missing-group error says both NOGROUP and 'No such key': either test decides alone"),
    "phantom_notebook.notebook.frames.x__pending__mutmut_25": (
        "str(exc).upper()",
        "the missing-group error says both NOGROUP and 'No such key': either test decides alone"),
    "phantom_notebook.notebook.frames.x__pending__mutmut_26": (
        "str(None).lower()",
        "the missing-group error says both NOGROUP and 'No such key': either test decides alone"),
    "phantom_notebook.notebook.frames.x__pending__mutmut_29": (
        "pipeline(transaction=None)",
        "a read-only pipeline: wrapped in MULTI/EXEC or not, the replies are the same"),
    "phantom_notebook.notebook.frames.x__pending__mutmut_30": (
        "pipeline(transaction=True)",
        "a read-only pipeline: wrapped in MULTI/EXEC or not, the replies are the same"),
    "phantom_notebook.notebook.frames.x__pending__mutmut_34": (
        'max=p["message_id"], count=None)',
        "min and max are the same id: at most one entry, whatever the count"),
    "phantom_notebook.notebook.frames.x__pending__mutmut_38": (
        'max=p["message_id"], )',
        "min and max are the same id: at most one entry, whatever the count"),
    "phantom_notebook.notebook.frames.x__pending__mutmut_43": (
        'max=p["message_id"], count=2)',
        "min and max are the same id: at most one entry, whatever the count"),
    "phantom_notebook.notebook.frames.x__pending__mutmut_46": (
        "strict=None)",
        "a pipeline returns one reply per command: the zip's lengths always agree"),
    "phantom_notebook.notebook.frames.x__pending__mutmut_49": (
        "pipe.execute(), )",
        "a pipeline returns one reply per command: the zip's lengths always agree"),
    "phantom_notebook.notebook.frames.x__pending__mutmut_50": (
        "strict=False)",
        "a pipeline returns one reply per command: the zip's lengths always agree"),
    "phantom_notebook.notebook.frames.x__pending__mutmut_88": (
        "if len(rows) > limit:",
        "at the limit the next stream is asked for COUNT 0 and adds nothing"),
    "phantom_notebook.notebook.frames.x__ready__mutmut_4": (
        "pipeline(transaction=None)",
        "None is as false as False: no MULTI/EXEC either way"),
    "phantom_notebook.notebook.frames.x__ready__mutmut_5": (
        "pipeline(transaction=True)",
        "read-only XINFO GROUPS: in MULTI/EXEC or not, the replies (errors too) are the same"),
    "phantom_notebook.notebook.frames.x__ready__mutmut_8": (
        "raise_on_error=None)",
        "None is as false as False: errors come back as values either way"),
    "phantom_notebook.notebook.frames.x__ready__mutmut_13": (
        "strict=None)",
        "a pipeline returns one reply per command: the zip's lengths always agree"),
    "phantom_notebook.notebook.frames.x__ready__mutmut_16": (
        "infos, )",
        "a pipeline returns one reply per command: the zip's lengths always agree"),
    "phantom_notebook.notebook.frames.x__ready__mutmut_17": (
        "strict=False)",
        "a pipeline returns one reply per command: the zip's lengths always agree"),
    "phantom_notebook.notebook.frames.x__ready__mutmut_46": (
        "min=low, count=limit - len(rows))",
        "redis-py's xrange defaults max to '+'"),
    "phantom_notebook.notebook.frames.x__short_id__mutmut_6": (
        'value.rsplit("-", )[-1]',
        "the last piece is the same however many cuts rsplit makes"),
    "phantom_notebook.notebook.frames.x__short_id__mutmut_9": (
        'value.rsplit("-", 2)[-1]',
        "the last piece is the same however many cuts rsplit makes"),
    "phantom_notebook.notebook.frames.x_audit_df__mutmut_23": (
        "count=None)]",
        "the oldest `limit` entries overall are among each stream's oldest `limit`: same rows"),
    "phantom_notebook.notebook.frames.x_audit_df__mutmut_26": (
        "min=lo, count=limit)]",
        "redis-py's xrange defaults max to '+'"),
    "phantom_notebook.notebook.frames.x_audit_df__mutmut_27": (
        'max="+", )]',
        "the oldest `limit` entries overall are among each stream's oldest `limit`: same rows"),
    "phantom_notebook.notebook.frames.x_messages_df__mutmut_102": (
        "max(now_ms - created, 1) / 1000",
        "ages are rounded to 0.1 s: a floor of 1 ms instead of 0 rounds to 0.0 alike"),
    "phantom_notebook.notebook.frames.x_messages_df__mutmut_149": (
        '"XXstateXX"',
        "every row gets its state: the state column always has a value, kept anyway"),
    "phantom_notebook.notebook.frames.x_messages_df__mutmut_150": (
        '"STATE"',
        "every row gets its state: the state column always has a value, kept anyway"),
    "phantom_notebook.notebook.frames.x_metrics_df__mutmut_13": (
        "if step <= 1 or step % BUCKET_S:",
        "a step of 1 is no multiple of 10 s: refused by the modulo either way"),
    "phantom_notebook.notebook.frames.x_metrics_df__mutmut_60": (
        "int(now_s) // step * step + 2, step)",
        "steps are multiples of 10 s: a stop 1 or 2 past the last start adds no start"),
}
