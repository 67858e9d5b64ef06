"""Text rules shared by training and every way in to a model (generate, evaluate, export's tests):
cleaning, what counts as an article, and reading an article from one input line. No TensorFlow.
"""
import json

from .errors import TitleError

# Unicode's category Cc is exactly these 65 code points (a test checks them against unicodedata)
CONTROL_TO_SPACE = dict.fromkeys([*range(0x00, 0x20), *range(0x7F, 0xA0)], " ")


def clean(text):
    """Control characters (Unicode category Cc: tabs, newlines, NUL, escapes) become spaces.

    They carry no meaning in a title and would otherwise enter the vocabulary or break a line-based
    file; the shipped corpora hold none, so the blog's training data is unchanged by this.
    """
    return text.translate(CONTROL_TO_SPACE)


EMPTY = "is empty (nothing but spaces or control characters)"


def article_error(article):
    """Why `article` cannot be titled, or None: an article must be text with something in it
    besides spaces and control characters, and text that UTF-8 can hold."""
    if not isinstance(article, str) or not clean(article).strip():
        return EMPTY
    error = not_unicode(article)
    return f"{error}; pass it as UTF-8" if error else None


def check_article(article):
    """The article cleaned (control characters read as spaces, as in training), or a TitleError
    saying why it cannot be titled (`article_error`)."""
    error = article_error(article)
    if error == EMPTY:
        raise TitleError("the article is empty; pass the article's text, e.g. "
                         'python seq2seq_title.py generate "文章内容"')
    if error:
        raise TitleError(f"the article {error}")
    return clean(article)


def not_unicode(text):
    """Why a str is not text that UTF-8 can hold, or None: a lone surrogate (a byte the terminal
    could not decode, or a JSON escape such as "\\udae5" with no partner)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"is not valid UTF-8 text (a lone surrogate {text[e.start]!r} at character {e.start})"
    return None


def field_text(row, field):
    """The cleaned text of a JSON object's field, or (None, why it is unusable): the one rule for
    reading a title or an article out of a record, in training, evaluation and generation."""
    value = row.get(field)
    text = clean(value) if isinstance(value, str) else None
    if text is None or not text.strip():
        got = "missing" if field not in row else repr(value)[:40]
        return None, f"field {field!r} must be a non-empty string, got {got}"
    error = not_unicode(text)
    return (None, f"field {field!r} {error}") if error else (text, None)


def parse_line(raw, content_field="content"):
    """One input line of `generate` (bytes) -> (article, None), or (None, what is wrong with it).

    A line starting with "{" is a JSON object whose `content_field` holds the article (any other
    fields, such as MongoDB's _id, are ignored); any other line is the article itself.
    """
    try:
        line = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return None, "not UTF-8"
    if line.lstrip().startswith("{"):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            return None, f'not valid JSON; expected {{"{content_field}": ...}} or plain text'
        if not isinstance(row, dict):
            return None, f'expected a JSON object with a "{content_field}" field'
        _, error = field_text(row, content_field)
        return (None, error) if error else (row[content_field], None)
    if not clean(line).strip():
        return None, "empty article (nothing but spaces or control characters)"
    return line, None
