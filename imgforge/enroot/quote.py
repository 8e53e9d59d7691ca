"""Bash's ``${word@Q}``: how enroot's import quotes ENTRYPOINT and CMD words into /etc/rc.

bash 5 ``sh_quote_reusable`` (lib/sh/shquote.c): ``''`` for the empty word; the ANSI-C
form ``$'...'`` for a word with a character that is not printable; else the word in single
quotes, each ``'`` written ``'\\''``. Words with non-printable characters are refused
before they get here (:mod:`imgforge.enroot.lint`): /etc/rc is run by ``/bin/sh``, which need
not read ``$'...'``, and which characters bash counts as printable depends on its locale.
"""

from __future__ import annotations


def bash_quote(word: str) -> str:
    """``word`` as bash's ``${word@Q}`` writes it (printable words)."""
    if not word:
        return "''"
    return "'" + word.replace("'", "'\\''") + "'"


def quoted_words(words: tuple[str, ...]) -> str:
    """``${words[@]@Q}`` expanded in a here-document: the quoted words joined by spaces."""
    return " ".join(bash_quote(word) for word in words)
