"""The alpha language's text: a tokenizer, a hand-written Pratt parser into a small syntax
tree, and the printer back to text.

The text is parsed, never evaluated as Python. The grammar, loosest binding first::

    expr     := either ["?" expr ":" expr]
    either   := both ("||" both)*
    both     := compare ("&&" compare)*
    compare  := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)*
    sum      := product (("+" | "-") product)*
    product  := unary (("*" | "/") unary)*
    unary    := ("-" | "+") unary | power
    power    := atom ["^" unary]
    atom     := NUMBER | NAME | NAME "(" [expr ("," expr)*] ")" | "(" expr ")"

Binary operators associate to the left except ``^`` (power, to the right; ``-x^2`` is
``-(x^2)``); ``c ? a : b`` (the notation of "101 Formulaic Alphas") is ``if_else(c, a, b)``
and nests to the right. A name may be ``IndClass.sector`` (a group level). An error names
the column and shows it with a caret:

>>> parse("rank(-ts_delta(close, 5))")
Call(name='rank', args=(Unary(op='-', operand=Call(name='ts_delta', args=(Name(name='close', \
column=16), Num(value=5.0, column=23)), column=7), column=6),), column=1)
>>> print(unparse(parse("(close - open) / (high - low + 0.001)")))
(close - open) / (high - low + 0.001)
>>> parse("ts_mean(close, 5")
Traceback (most recent call last):
...
qmtl.alpha.syntax.AlphaSyntaxError: expected ',' or ')', got the end of the text at column 17
  ts_mean(close, 5
                  ^
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from qmtl.core.errors import QmtlError

__all__ = [
    "AlphaSyntaxError",
    "Binary",
    "Call",
    "Name",
    "Node",
    "Num",
    "Unary",
    "parse",
    "unparse",
]


class AlphaSyntaxError(QmtlError, ValueError):
    """The alpha text is malformed or names what does not exist; the message says what and
    shows the text with a caret under the column (1-based ``column`` attribute).

    >>> err = AlphaSyntaxError("unknown field 'clse'", "rank(clse)", 6)
    >>> print(err)
    unknown field 'clse' at column 6
      rank(clse)
           ^
    >>> err.column, err.reason
    (6, "unknown field 'clse'")
    """

    def __init__(self, reason: str, text: str, column: int, hint: str = "") -> None:
        self.reason, self.text, self.column, self.hint = reason, text, column, hint
        line = text.replace("\n", " ").replace("\t", " ")
        caret = " " * (column - 1) + "^"
        super().__init__(f"{reason} at column {column}{hint}\n  {line}\n  {caret}")


@dataclass(frozen=True)
class Num:
    """A number literal.

    >>> Num(2.5).value
    2.5
    """

    value: float
    column: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Name:
    """A bare name: a field such as ``close`` (or ``group``, the group map).

    >>> Name("close").name
    'close'
    """

    name: str
    column: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Call:
    """A function call ``name(args...)``.

    >>> Call("rank", (Name("close"),)).name
    'rank'
    """

    name: str
    args: tuple[Node, ...]
    column: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Unary:
    """A prefix ``-`` or ``+``.

    >>> Unary("-", Name("close")).op
    '-'
    """

    op: str
    operand: Node
    column: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Binary:
    """An infix operator: arithmetic or a comparison.

    >>> Binary("+", Num(1.0), Num(2.0)).op
    '+'
    """

    op: str
    left: Node
    right: Node
    column: int = field(default=0, compare=False)


Node = Num | Name | Call | Unary | Binary
"""A node of the syntax tree (columns are not part of equality)."""

BINDING: dict[str, int] = {
    "||": 4, "&&": 6,
    "<": 10, "<=": 10, ">": 10, ">=": 10, "==": 10, "!=": 10,
    "+": 20, "-": 20,
    "*": 30, "/": 30,
    "^": 50,
}
"""How tightly each infix operator binds (higher first); a prefix sign binds at 40, the
ternary ``? :`` at 2."""
PREFIX = 40
TERNARY = 2
RIGHT = frozenset({"^"})
"""Infix operators that associate to the right."""

_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>IndClass\.[A-Za-z_][A-Za-z0-9_]*|[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op><=|>=|==|!=|\|\||&&|[-+*/<>(),^?:]))"
)


_HINTS = {
    "=": " (comparisons are written ==)",
    "&": " (use a && b, or and(a, b))",
    "|": " (use a || b, or or(a, b))",
    "!": " (use not(x), or != to compare)",
}


@dataclass(frozen=True)
class Token:
    """A token: its kind (``num``, ``name``, ``op`` or ``end``), text and 1-based column.

    >>> tokens("a+1")[1]
    Token(kind='op', text='+', column=2)
    """

    kind: str
    text: str
    column: int


def tokens(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``end`` token.

    >>> [t.text for t in tokens("ts_mean(close, 1e-3)")]
    ['ts_mean', '(', 'close', ',', '1e-3', ')', '']
    >>> tokens("close $ 2")
    Traceback (most recent call last):
    ...
    qmtl.alpha.syntax.AlphaSyntaxError: unexpected character '$' at column 7
      close $ 2
            ^
    """
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            rest = text[pos:]
            stripped = rest.lstrip()
            if not stripped:
                break
            at = pos + len(rest) - len(stripped)
            hint = _HINTS.get(stripped[0], "")
            raise AlphaSyntaxError(f"unexpected character {stripped[0]!r}", text, at + 1, hint)
        kind = match.lastgroup or "op"
        out.append(Token(kind, match.group(kind), match.start(kind) + 1))
        pos = match.end()
    out.append(Token("end", "", len(text.rstrip()) + 1))
    return out


def _describe(tok: Token) -> str:
    return "the end of the text" if tok.kind == "end" else repr(tok.text)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokens(text)
        self.pos = 0

    def peek(self) -> Token:
        return self.toks[self.pos]

    def take(self) -> Token:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def fail(self, reason: str, tok: Token) -> AlphaSyntaxError:
        return AlphaSyntaxError(reason, self.text, tok.column)

    def expression(self, min_binding: int = 0) -> Node:
        left = self.prefix()
        while True:
            tok = self.peek()
            if tok.kind == "op" and tok.text == "?" and TERNARY > min_binding:
                self.take()
                then = self.expression()
                colon = self.take()
                if colon.kind != "op" or colon.text != ":":
                    raise self.fail(f"expected ':' of the '?' at column {tok.column}, got "
                                    f"{_describe(colon)}", colon)
                other = self.expression(TERNARY - 1)
                left = Call("if_else", (left, then, other), tok.column)
                continue
            binding = BINDING.get(tok.text) if tok.kind == "op" else None
            if binding is None or binding <= min_binding:
                return left
            self.take()
            right = self.expression(binding - 1 if tok.text in RIGHT else binding)
            left = Binary(tok.text, left, right, tok.column)

    def prefix(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            return Num(float(tok.text), tok.column)
        if tok.kind == "name":
            if self.peek().text == "(" and self.peek().kind == "op":
                return self.call(tok)
            return Name(tok.text, tok.column)
        if tok.kind == "op" and tok.text in ("-", "+"):
            return Unary(tok.text, self.expression(PREFIX), tok.column)
        if tok.kind == "op" and tok.text == "(":
            inner = self.expression()
            close = self.take()
            if close.text != ")" or close.kind != "op":
                raise self.fail(
                    f"expected ')' to close the '(' at column {tok.column}, got "
                    f"{_describe(close)}", close)
            return inner
        raise self.fail(f"expected a number, a field or a function call, got {_describe(tok)}",
                        tok)

    def call(self, name: Token) -> Call:
        self.take()  # "("
        args: list[Node] = []
        if self.peek().text == ")" and self.peek().kind == "op":
            self.take()
            return Call(name.text, (), name.column)
        while True:
            args.append(self.expression())
            tok = self.take()
            if tok.kind == "op" and tok.text == ")":
                return Call(name.text, tuple(args), name.column)
            if tok.kind != "op" or tok.text != ",":
                raise self.fail(f"expected ',' or ')', got {_describe(tok)}", tok)


def parse(text: str) -> Node:
    """The syntax tree of an alpha expression (see the module docstring for the grammar).

    >>> parse("close > open")
    Binary(op='>', left=Name(name='close', column=1), right=Name(name='open', column=9), \
column=7)
    >>> parse("rank(close) rank(open)")
    Traceback (most recent call last):
    ...
    qmtl.alpha.syntax.AlphaSyntaxError: expected an operator or the end, got 'rank' at column 13
      rank(close) rank(open)
                  ^
    """
    if not isinstance(text, str):
        raise TypeError(f"an alpha is text, got {type(text).__name__}")
    if not text.strip():
        raise AlphaSyntaxError("the alpha is empty", text, 1)
    parser = _Parser(text)
    try:
        tree = parser.expression()
    except RecursionError:
        raise AlphaSyntaxError("the alpha nests too deeply", text,
                               parser.peek().column) from None
    tok = parser.peek()
    if tok.kind != "end":
        raise parser.fail(f"expected an operator or the end, got {_describe(tok)}", tok)
    return tree


def _number(value: float) -> str:
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = repr(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"no literal for {value!r}: a literal is finite and >= 0")
    return text


def unparse(node: Node) -> str:
    """The text of a syntax tree, with only the parentheses it needs;
    ``parse(unparse(t)) == t``.

    >>> unparse(Binary("-", Num(1.0), Binary("-", Name("a"), Name("b"))))
    '1 - (a - b)'
    >>> unparse(Unary("-", Call("rank", (Name("close"),))))
    '-rank(close)'
    """
    if isinstance(node, Num):
        return _number(node.value)
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Call):
        return f"{node.name}({', '.join(unparse(a) for a in node.args)})"
    if isinstance(node, Unary):
        inner = unparse(node.operand)
        if isinstance(node.operand, Binary) and BINDING[node.operand.op] < PREFIX:
            inner = f"({inner})"
        return f"{node.op}{inner}"
    binding = BINDING[node.op]
    left, right = unparse(node.left), unparse(node.right)
    right_assoc = node.op in RIGHT
    if (isinstance(node.left, Binary) and (BINDING[node.left.op] < binding or (
            right_assoc and BINDING[node.left.op] == binding))) or (
            isinstance(node.left, Unary) and binding > PREFIX):
        left = f"({left})"
    if isinstance(node.right, Binary) and (BINDING[node.right.op] < binding or (
            not right_assoc and BINDING[node.right.op] == binding)):
        right = f"({right})"
    return f"{left} {node.op} {right}"
