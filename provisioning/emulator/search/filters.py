"""`$filter` in the OData subset Switchyard uses, checked against the index as Azure checks it:
comparisons (`eq ne gt ge lt le`) of a field with a literal, `search.in(field, 'a,b', ',')`,
`any`/`all` over a collection field (`tags/any(t: t eq 'x')`), `and`, `or`, `not`,
parentheses, `true`/`false`. A filter that does not parse, names a field the index does not
have, or one that is not filterable is refused with Azure's message."""

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]

TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:[./][A-Za-z_][A-Za-z0-9_]*)*)|(?P<symbol>[(),:]))"
)
COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
KEYWORDS = COMPARISONS | {"and", "or", "not", "true", "false", "null"}


class FilterError(Exception):
    """A filter Azure would refuse; the message is Azure's."""


@dataclass(frozen=True)
class CompiledFilter:
    matches: Predicate
    # A field and a value that every document the filter lets through holds (the filter is, or is
    # joined by `and` to, `field eq value`): only the documents holding it need to be looked at.
    anchor: tuple[str, Any] | None


@dataclass(frozen=True)
class Token:
    kind: str  # string, number, name, symbol, end
    text: str
    position: int

    @property
    def value(self) -> Any:
        if self.kind == "string":
            return self.text[1:-1].replace("''", "'")
        if self.kind == "number":
            return float(self.text)
        return self.text


def tokenize(text: str) -> list[Token]:
    tokens = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = TOKEN.match(text, position)
        if match is None or match.end() == position:
            blank = len(text[position:]) - len(text[position:].lstrip())
            raise FilterError(_syntax(text, position + blank))
        kind = match.lastgroup or "symbol"
        tokens.append(Token(kind, match.group(kind), match.start(kind)))
        position = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _syntax(text: str, position: int) -> str:
    return f"Invalid expression: Syntax error at position {position} in '{text}'."


class Parser:
    def __init__(self, text: str, fields: dict[str, dict[str, Any]]) -> None:
        self.text = text
        self.fields = fields
        self.tokens = tokenize(text)
        self.at = 0
        self.variables: dict[str, str] = {}  # a lambda's range variable -> its collection field
        # The predicates that only let through documents holding a value: id -> (predicate, anchor).
        self.anchors: dict[int, tuple[Predicate, tuple[str, Any]]] = {}

    # Reading ------------------------------------------------------------------------------------

    @property
    def current(self) -> Token:
        return self.tokens[self.at]

    def take(self) -> Token:
        token = self.tokens[self.at]
        self.at = min(self.at + 1, len(self.tokens) - 1)
        return token

    def expect(self, symbol: str) -> None:
        if self.current.text != symbol or self.current.kind not in ("symbol", "name"):
            raise FilterError(_syntax(self.text, self.current.position))
        self.take()

    def word(self, word: str) -> bool:
        return self.current.kind == "name" and self.current.text.lower() == word

    # Grammar ------------------------------------------------------------------------------------

    def parse(self) -> CompiledFilter:
        predicate = self.disjunction()
        if self.current.kind != "end":
            raise FilterError(_syntax(self.text, self.current.position))
        return CompiledFilter(predicate, self.anchor_of(predicate))

    def anchor_of(self, predicate: Predicate) -> tuple[str, Any] | None:
        known = self.anchors.get(id(predicate))
        return known[1] if known is not None and known[0] is predicate else None

    def anchored(self, predicate: Predicate, anchor: tuple[str, Any] | None) -> Predicate:
        if anchor is not None:
            self.anchors[id(predicate)] = (predicate, anchor)
        return predicate

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.word("or"):
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else lambda document: any(part(document) for part in parts)

    def conjunction(self) -> Predicate:
        parts = [self.negation()]
        while self.word("and"):
            self.take()
            parts.append(self.negation())
        if len(parts) == 1:
            return parts[0]
        anchor = next((found for part in parts if (found := self.anchor_of(part)) is not None), None)
        return self.anchored(lambda document: all(part(document) for part in parts), anchor)

    def negation(self) -> Predicate:
        if self.word("not"):
            self.take()
            inner = self.negation()
            return lambda document: not inner(document)
        return self.primary()

    def primary(self) -> Predicate:
        token = self.current
        if token.kind == "symbol" and token.text == "(":
            self.take()
            inner = self.disjunction()
            self.expect(")")
            return inner
        if self.word("true") or self.word("false"):
            self.take()
            constant = token.text.lower() == "true"
            if self.current.kind == "name" and self.current.text.lower() in COMPARISONS:
                raise FilterError(_syntax(self.text, self.current.position))
            return lambda document: constant
        if token.kind == "name" and token.text.lower() == "search.in":
            return self.search_in()
        if token.kind == "name" and token.text.lower() not in KEYWORDS:
            return self.field_expression()
        raise FilterError(_syntax(self.text, token.position))

    def field_expression(self) -> Predicate:
        token = self.take()
        path = token.text
        for suffix in ("/any", "/all"):
            if path.lower().endswith(suffix) and self.current.text == "(":
                return self.lambda_over(path[: -len(suffix)], suffix[1:], token)
        getter = self.operand_getter(token)
        if self.current.kind == "name" and self.current.text.lower() in COMPARISONS:
            operator = self.take().text.lower()
            literal = self.take()
            if literal.kind not in ("string", "number") and literal.text.lower() not in (
                "true",
                "false",
                "null",
            ):
                raise FilterError(_syntax(self.text, literal.position))
            expected = _literal(literal)
            anchor = (
                (path, expected)
                if operator == "eq" and expected is not None and path not in self.variables
                else None
            )
            return self.anchored(lambda document: _compare(getter(document), operator, expected), anchor)
        if self._is_boolean(token):
            return lambda document: getter(document) is True
        raise FilterError(_syntax(self.text, self.current.position))

    def _is_boolean(self, token: Token) -> bool:
        definition = self.fields.get(token.text)
        return definition is not None and definition["type"] == "Edm.Boolean"

    def operand_getter(self, token: Token) -> Callable[[dict[str, Any]], Any]:
        if token.text in self.variables:
            return lambda document: document.get(token.text)
        definition = self.fields.get(token.text)
        if definition is None:
            raise FilterError(
                f"Invalid expression: Could not find a property named '{token.text}' on type 'search.document'."
            )
        if not definition.get("filterable"):
            raise FilterError(
                f"Invalid expression: The field '{token.text}' is not filterable. Only filterable fields can be used in filter expressions."
            )
        if definition["type"].startswith("Collection("):
            raise FilterError(
                f"Invalid expression: The field '{token.text}' is a collection; use any or all to filter on its values."
            )
        return lambda document: document.get(token.text)

    def lambda_over(self, path: str, quantifier: str, token: Token) -> Predicate:
        definition = self.fields.get(path)
        if definition is None:
            raise FilterError(
                f"Invalid expression: Could not find a property named '{path}' on type 'search.document'."
            )
        if not definition.get("filterable") or not definition["type"].startswith("Collection("):
            raise FilterError(
                f"Invalid expression: The field '{path}' is not a filterable collection. Only filterable collection fields can be used with any or all."
            )
        self.expect("(")
        if self.current.text == ")":
            self.take()
            return lambda document: bool(document.get(path))
        variable = self.take()
        if variable.kind != "name":
            raise FilterError(_syntax(self.text, variable.position))
        self.expect(":")
        self.variables[variable.text] = path
        body = self.disjunction()
        del self.variables[variable.text]
        self.expect(")")
        name = variable.text
        test = any if quantifier == "any" else all
        return lambda document: test(body({name: value}) for value in document.get(path) or [])

    def search_in(self) -> Predicate:
        self.take()
        self.expect("(")
        field_token = self.take()
        if field_token.kind != "name":
            raise FilterError(_syntax(self.text, field_token.position))
        getter = self.operand_getter(field_token)
        self.expect(",")
        values = self.take()
        if values.kind != "string":
            raise FilterError(_syntax(self.text, values.position))
        delimiters = " ,"
        if self.current.text == ",":
            self.take()
            given = self.take()
            if given.kind != "string":
                raise FilterError(_syntax(self.text, given.position))
            delimiters = str(given.value)
        self.expect(")")
        pattern = "[" + re.escape(delimiters) + "]" if delimiters else None
        wanted = set(re.split(pattern, str(values.value)) if pattern else [str(values.value)]) - {""}
        return lambda document: getter(document) in wanted


def _literal(token: Token) -> Any:
    lowered = token.text.lower()
    if token.kind == "name":
        return {"true": True, "false": False, "null": None}[lowered]
    return token.value


def _compare(actual: Any, operator: str, expected: Any) -> bool:
    if operator == "eq":
        return bool(actual == expected)
    if operator == "ne":
        return bool(actual != expected)
    if actual is None or expected is None:
        return False
    try:
        if operator == "gt":
            return bool(actual > expected)
        if operator == "ge":
            return bool(actual >= expected)
        if operator == "lt":
            return bool(actual < expected)
        return bool(actual <= expected)
    except TypeError:
        return False


def compile_filter(text: str, fields: dict[str, dict[str, Any]]) -> CompiledFilter:
    return Parser(text, fields).parse()
