"""A small, real JQL parser: a lexer, a recursive-descent parser and Jira's query structure.

The grammar covers what a chat integration writes (subscription filters, searches)::

    query    := [or_expr] [ORDER BY sort_key ("," sort_key)*]
    or_expr  := and_expr ((OR | "||" | "|") and_expr)*
    and_expr := not_expr ((AND | "&&" | "&") not_expr)*
    not_expr := (NOT | "!") not_expr | "(" or_expr ")" | clause
    clause   := field operator operand
    operator := = | != | ~ | !~ | < | > | <= | >= | IN | NOT IN | IS | IS NOT
    operand  := value | function | EMPTY | NULL | "(" operand ("," operand)* ")"
    function := word "(" [value ("," value)*] ")"
    sort_key := field [ASC | DESC]

Keywords are case-insensitive and only count unquoted; values are unquoted words
(``ABC-123``, ``10001``) or strings in double or single quotes with backslash escapes.
Syntax errors carry Jira's wording, e.g. ``Error in the JQL Query: Expecting operator but got
'foo'. … (line 1, character 9)``. Whether fields and values exist is not this module's business:
that is checked against a site by :mod:`dfj_sandbox.jira_sim.jql_eval`.

:func:`structure` renders a parsed query as the ``JqlQuery`` object of ``/rest/api/3/jql/parse``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = [
    "Clause",
    "Compound",
    "EmptyKeyword",
    "Function",
    "JqlSyntaxError",
    "ListOperand",
    "Negation",
    "Node",
    "Operand",
    "ParseCache",
    "Query",
    "SortKey",
    "Value",
    "parse",
    "structure",
]

_VALID_OPERATORS: Final = (
    "The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', "
    "'IS' and 'IS NOT'."
)
_SYMBOL_OPERATORS: Final = ("!=", "!~", "<=", ">=", "=", "~", "<", ">")
_STOP_CHARS: Final = frozenset(" \t\r\n\"'(),=!<>~&|")
_RESERVED_CHARS: Final = frozenset("{}*/%+^$#@?;")
_KEYWORDS: Final = frozenset(
    {"and", "or", "not", "in", "is", "empty", "null", "order", "by", "asc", "desc"}
)
_ESCAPES: Final = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "r": "\r", "t": "\t", " ": " "}

TokenKind = Literal["string", "word", "op", "lparen", "rparen", "comma", "eof"]


class JqlSyntaxError(ValueError):
    """A query that does not parse; ``message`` is what Jira would say."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class _Token:
    kind: TokenKind
    text: str
    position: int

    def is_keyword(self, *words: str) -> bool:
        return self.kind == "word" and self.text.lower() in words


# --- the tree -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Value:
    """A literal operand (``quoted`` if it was written as a string)."""

    text: str
    quoted: bool = False


@dataclass(frozen=True, slots=True)
class Function:
    """A function operand such as ``currentUser()``."""

    name: str
    arguments: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EmptyKeyword:
    """``EMPTY`` or ``NULL``."""

    word: str


@dataclass(frozen=True, slots=True)
class ListOperand:
    """``(a, b, c)``."""

    items: tuple[Value | Function | EmptyKeyword, ...]


Operand = Value | Function | EmptyKeyword | ListOperand


@dataclass(frozen=True, slots=True)
class Clause:
    """``field operator operand``; ``operator`` is lower case (``not in``, ``is not`` …)."""

    field: str
    operator: str
    operand: Operand


@dataclass(frozen=True, slots=True)
class Compound:
    """Clauses joined by ``and`` or ``or``."""

    operator: Literal["and", "or"]
    clauses: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Negation:
    """``NOT clause``."""

    clause: Node


Node = Clause | Compound | Negation


@dataclass(frozen=True, slots=True)
class SortKey:
    """One ``ORDER BY`` entry."""

    field: str
    direction: Literal["asc", "desc"] | None = None


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: its restriction (None if it has none) and its ordering."""

    text: str
    where: Node | None
    order_by: tuple[SortKey, ...] = ()


# --- lexer --------------------------------------------------------------------------------


def _where(text: str, position: int) -> str:
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"(line {line}, character {column})"


def _error(text: str, position: int, message: str) -> JqlSyntaxError:
    return JqlSyntaxError(f"Error in the JQL Query: {message} {_where(text, position)}")


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char == quote:
            return "".join(out), index + 1
        if char == "\\":
            if index + 1 >= len(text):
                break
            code = text[index + 1]
            if code == "u" and index + 6 <= len(text):
                digits = text[index + 2 : index + 6]
                try:
                    out.append(chr(int(digits, 16)))
                except ValueError:
                    raise _error(
                        text, index, f"The escape sequence '\\u{digits}' in the string is illegal."
                    ) from None
                index += 6
                continue
            if code not in _ESCAPES:
                raise _error(
                    text, index, f"The escape sequence '\\{code}' in the string is illegal."
                )
            out.append(_ESCAPES[code])
            index += 2
            continue
        out.append(char)
        index += 1
    raise _error(text, start, f"The quoted string '{''.join(out)}' has not been completed.")


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        if char.isspace():
            index += 1
            continue
        if char in "\"'":
            value, end = _read_string(text, index)
            tokens.append(_Token("string", value, index))
            index = end
            continue
        if char == "(":
            tokens.append(_Token("lparen", char, index))
            index += 1
            continue
        if char == ")":
            tokens.append(_Token("rparen", char, index))
            index += 1
            continue
        if char == ",":
            tokens.append(_Token("comma", char, index))
            index += 1
            continue
        if text.startswith(("&&", "||"), index):
            tokens.append(_Token("op", text[index : index + 2], index))
            index += 2
            continue
        if char in "&|":
            tokens.append(_Token("op", char, index))
            index += 1
            continue
        symbol = next((op for op in _SYMBOL_OPERATORS if text.startswith(op, index)), None)
        if symbol is not None:
            tokens.append(_Token("op", symbol, index))
            index += len(symbol)
            continue
        if char == "!":
            tokens.append(_Token("op", "!", index))
            index += 1
            continue
        start = index
        while index < length and text[index] not in _STOP_CHARS:
            if text[index] in _RESERVED_CHARS:
                reserved = text[index]
                raise _error(
                    text,
                    index,
                    f"The character '{reserved}' is a reserved JQL character. You must enclose"
                    f" it in a string or use the escape '\\u{ord(reserved):04x}' instead.",
                )
            index += 1
        tokens.append(_Token("word", text[start:index], start))
    tokens.append(_Token("eof", "", length))
    return tokens


# --- parser -------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self._text = text
        self._tokens = _tokens(text)
        self._index = 0

    def _peek(self, ahead: int = 0) -> _Token:
        return self._tokens[min(self._index + ahead, len(self._tokens) - 1)]

    def _take(self) -> _Token:
        token = self._tokens[self._index]
        if token.kind != "eof":
            self._index += 1
        return token

    def _fail(self, token: _Token, expecting: str, hint: str = "") -> JqlSyntaxError:
        tail = f" {hint}" if hint else ""
        if token.kind == "eof":
            message = f"Expecting {expecting} before the end of the query.{tail}"
            return JqlSyntaxError(f"Error in the JQL Query: {message}")
        return _error(
            self._text, token.position, f"Expecting {expecting} but got '{token.text}'.{tail}"
        )

    def parse(self) -> Query:
        where: Node | None = None
        if not self._peek().is_keyword("order") and self._peek().kind != "eof":
            where = self._or()
        order_by: tuple[SortKey, ...] = ()
        if self._peek().is_keyword("order"):
            order_by = self._order_by()
        token = self._peek()
        if token.kind != "eof":
            raise self._fail(token, "either 'OR' or 'AND'")
        return Query(text=self._text, where=where, order_by=order_by)

    def _or(self) -> Node:
        clauses = [self._and()]
        while self._peek().is_keyword("or") or (
            self._peek().kind == "op" and self._peek().text in ("||", "|")
        ):
            self._take()
            clauses.append(self._and())
        return clauses[0] if len(clauses) == 1 else Compound("or", tuple(clauses))

    def _and(self) -> Node:
        clauses = [self._not()]
        while self._peek().is_keyword("and") or (
            self._peek().kind == "op" and self._peek().text in ("&&", "&")
        ):
            self._take()
            clauses.append(self._not())
        return clauses[0] if len(clauses) == 1 else Compound("and", tuple(clauses))

    def _not(self) -> Node:
        token = self._peek()
        if token.is_keyword("not") or (token.kind == "op" and token.text == "!"):
            self._take()
            return Negation(self._not())
        if token.kind == "lparen":
            self._take()
            inner = self._or()
            closing = self._peek()
            if closing.kind != "rparen":
                raise self._fail(closing, "')'")
            self._take()
            return inner
        return self._clause()

    def _field(self, what: str = "a field name") -> str:
        token = self._peek()
        if token.kind == "string":
            self._take()
            return token.text
        if token.kind == "word" and token.text.lower() not in _KEYWORDS:
            self._take()
            return token.text
        if token.kind == "word":
            raise self._fail(
                token,
                what,
                f"You must surround '{token.text}' in quotation characters to use it as a"
                " field name.",
            )
        raise self._fail(token, what)

    def _clause(self) -> Clause:
        field = self._field()
        operator = self._operator()
        if operator in ("in", "not in"):
            operand: Operand = self._list_or_function()
        elif operator in ("is", "is not"):
            operand = self._empty()
        else:
            operand = self._single()
        return Clause(field=field, operator=operator, operand=operand)

    def _operator(self) -> str:
        token = self._peek()
        if token.kind == "op" and token.text in _SYMBOL_OPERATORS:
            self._take()
            return token.text
        if token.is_keyword("in"):
            self._take()
            return "in"
        if token.is_keyword("is"):
            self._take()
            if self._peek().is_keyword("not"):
                self._take()
                return "is not"
            return "is"
        if token.is_keyword("not") and self._peek(1).is_keyword("in"):
            self._take()
            self._take()
            return "not in"
        if token.is_keyword("was", "changed"):
            raise _error(
                self._text,
                token.position,
                f"The operator '{token.text.upper()}' is not supported by this Jira simulator.",
            )
        raise self._fail(token, "operator", _VALID_OPERATORS)

    def _empty(self) -> EmptyKeyword:
        token = self._peek()
        if token.is_keyword("empty", "null"):
            self._take()
            return EmptyKeyword(token.text.upper())
        raise self._fail(token, "'EMPTY' or 'NULL'")

    def _single(self) -> Value | Function | EmptyKeyword:
        token = self._peek()
        if token.kind == "string":
            self._take()
            return Value(token.text, quoted=True)
        if token.is_keyword("empty", "null"):
            self._take()
            return EmptyKeyword(token.text.upper())
        if token.kind == "word" and token.text.lower() not in _KEYWORDS:
            self._take()
            if self._peek().kind == "lparen":
                return self._arguments(token.text)
            return Value(token.text)
        hint = ""
        if token.kind == "word":
            hint = f"You must surround '{token.text}' in quotation characters to use it as a value."
        raise self._fail(token, "either a value, list or function", hint)

    def _arguments(self, name: str) -> Function:
        self._take()  # "("
        arguments: list[str] = []
        if self._peek().kind == "rparen":
            self._take()
            return Function(name)
        while True:
            token = self._peek()
            if token.kind not in ("word", "string"):
                raise self._fail(token, "a function argument")
            self._take()
            arguments.append(token.text)
            separator = self._peek()
            if separator.kind == "rparen":
                self._take()
                return Function(name, tuple(arguments))
            if separator.kind != "comma":
                raise self._fail(separator, "',' or ')'")
            self._take()

    def _list_or_function(self) -> ListOperand | Function:
        token = self._peek()
        if token.kind == "word" and self._peek(1).kind == "lparen":
            self._take()
            return self._arguments(token.text)
        if token.kind != "lparen":
            raise self._fail(token, "'('")
        self._take()
        items: list[Value | Function | EmptyKeyword] = []
        while True:
            items.append(self._single())
            separator = self._peek()
            if separator.kind == "rparen":
                self._take()
                return ListOperand(tuple(items))
            if separator.kind != "comma":
                raise self._fail(separator, "',' or ')'")
            self._take()

    def _order_by(self) -> tuple[SortKey, ...]:
        self._take()  # ORDER
        token = self._peek()
        if not token.is_keyword("by"):
            raise self._fail(token, "'BY'")
        self._take()
        keys: list[SortKey] = []
        while True:
            field = self._field("a field name to order by")
            direction: Literal["asc", "desc"] | None = None
            if self._peek().is_keyword("asc"):
                self._take()
                direction = "asc"
            elif self._peek().is_keyword("desc"):
                self._take()
                direction = "desc"
            keys.append(SortKey(field, direction))
            if self._peek().kind != "comma":
                return tuple(keys)
            self._take()


def parse(text: str) -> Query:
    """Parse ``text`` (JqlSyntaxError with Jira's message if it is not JQL)."""
    return _Parser(text).parse()


class ParseCache:
    """Parsed queries by text, least recently used dropped first (parsing is pure)."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._entries: OrderedDict[str, Query | JqlSyntaxError] = OrderedDict()

    def parse(self, text: str) -> Query:
        """Like :func:`parse`, remembering the answer (syntax errors included)."""
        entry = self._entries.get(text)
        if entry is None:
            try:
                entry = parse(text)
            except JqlSyntaxError as error:
                entry = error
            self._entries[text] = entry
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(text)
        if isinstance(entry, JqlSyntaxError):
            raise JqlSyntaxError(entry.message)
        return entry


# --- structure (jql/parse) ----------------------------------------------------------------


def _encode(text: str, quoted: bool) -> str:
    plain = text and not quoted and not any(c in _STOP_CHARS or c in _RESERVED_CHARS for c in text)
    if plain and text.lower() not in _KEYWORDS:
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _operand(operand: Operand) -> dict[str, Any]:
    if isinstance(operand, Value):
        return {"value": operand.text, "encodedValue": _encode(operand.text, operand.quoted)}
    if isinstance(operand, EmptyKeyword):
        return {"keyword": "empty"}
    if isinstance(operand, Function):
        encoded_args = ", ".join(_encode(a, False) for a in operand.arguments)
        return {
            "function": operand.name,
            "arguments": list(operand.arguments),
            "encodedOperand": f"{operand.name}({encoded_args})",
        }
    values = [_operand(item) for item in operand.items]
    encoded = ", ".join(
        value.get("encodedValue") or value.get("encodedOperand") or "EMPTY" for value in values
    )
    return {"values": values, "encodedOperand": f"({encoded})"}


def _node(node: Node) -> dict[str, Any]:
    if isinstance(node, Clause):
        return {
            "field": {"name": node.field},
            "operator": node.operator,
            "operand": _operand(node.operand),
        }
    if isinstance(node, Negation):
        return {"operator": "not", "clauses": [_node(node.clause)]}
    return {"operator": node.operator, "clauses": [_node(c) for c in node.clauses]}


def structure(query: Query) -> dict[str, Any]:
    """The ``JqlQuery`` object Jira's ``jql/parse`` returns for ``query``."""
    result: dict[str, Any] = {}
    if query.where is not None:
        result["where"] = _node(query.where)
    if query.order_by:
        fields = []
        for key in query.order_by:
            entry: dict[str, Any] = {"field": {"name": key.field}}
            if key.direction is not None:
                entry["direction"] = key.direction
            fields.append(entry)
        result["orderBy"] = {"fields": fields}
    return result
