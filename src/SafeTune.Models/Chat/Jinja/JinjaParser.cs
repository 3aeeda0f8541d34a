using System.Globalization;

namespace SafeTune.Models.Chat.Jinja;

// ---- syntax tree --------------------------------------------------------------------------------------------------

internal abstract record Node(int Line);

internal sealed record TextNode(string Text, int Line) : Node(Line);

internal sealed record OutputNode(Expr Value, int Line) : Node(Line);

internal sealed record IfNode(Expr Test, List<Node> Body, List<Node> Else, int Line) : Node(Line);

internal sealed record ForNode(Expr Target, Expr Iterable, Expr? Condition, List<Node> Body, List<Node> Else, int Line) : Node(Line);

internal sealed record SetNode(Expr Target, Expr? Value, List<Node> Body, int Line) : Node(Line);

internal sealed record BreakNode(int Line) : Node(Line);

internal sealed record ContinueNode(int Line) : Node(Line);

internal abstract record Expr(int Line) : Node(Line);

internal sealed record LiteralExpr(object? Value, int Line) : Expr(Line);

internal sealed record NameExpr(string Name, int Line) : Expr(Line);

internal sealed record ListExpr(List<Expr> Items, bool IsTuple, int Line) : Expr(Line);

internal sealed record DictExpr(List<(Expr Key, Expr Value)> Items, int Line) : Expr(Line);

internal sealed record MemberExpr(Expr Target, Expr Property, bool Computed, int Line) : Expr(Line);

internal sealed record SliceExpr(Expr? Start, Expr? Stop, Expr? Step, int Line) : Expr(Line);

internal sealed record Argument(string? Keyword, Expr Value);

internal sealed record CallExpr(Expr Callee, List<Argument> Args, int Line) : Expr(Line);

internal sealed record FilterExpr(Expr Operand, string Name, List<Argument>? Args, int Line) : Expr(Line);

internal sealed record TestExpr(Expr Operand, bool Negate, string Name, int Line) : Expr(Line);

internal sealed record BinaryExpr(string Op, Expr Left, Expr Right, int Line) : Expr(Line);

internal sealed record UnaryExpr(string Op, Expr Operand, int Line) : Expr(Line);

internal sealed record TernaryExpr(Expr Condition, Expr IfTrue, Expr IfFalse, int Line) : Expr(Line);

internal sealed record SelectExpr(Expr Value, Expr Condition, int Line) : Expr(Line);

// ---- parser -------------------------------------------------------------------------------------------------------

/// <summary>A recursive-descent parser with the operator precedence of Hugging Face's reference interpreter.</summary>
internal sealed class JinjaParser
{
    private readonly List<Token> _tokens;
    private readonly string _name;
    private int _current;

    private JinjaParser(List<Token> tokens, string name)
    {
        _tokens = tokens;
        _name = name;
    }

    public static List<Node> Parse(List<Token> tokens, string name)
    {
        var parser = new JinjaParser(tokens, name);
        var body = new List<Node>();
        while (parser._current < tokens.Count)
            if (parser.ParseAny() is { } node) body.Add(node);
        return body;
    }

    private int Line => _current < _tokens.Count ? _tokens[_current].Line : (_tokens.Count > 0 ? _tokens[^1].Line : 0);

    private JinjaException Error(string detail) => new(_name, Line, detail);

    private bool Is(TokenType type) => _current < _tokens.Count && _tokens[_current].Type == type;

    private bool IsIdentifier(string name, int offset = 0) =>
        _current + offset < _tokens.Count && _tokens[_current + offset].Type == TokenType.Identifier && _tokens[_current + offset].Value == name;

    private bool IsStatement(params string[] names) =>
        Is(TokenType.OpenStatement) && _current + 1 < _tokens.Count && _tokens[_current + 1].Type == TokenType.Identifier
        && names.Contains(_tokens[_current + 1].Value);

    private Token Expect(TokenType type, string what)
    {
        if (_current >= _tokens.Count) throw Error($"expected {what}, but the template ended");
        var t = _tokens[_current];
        if (t.Type != type) throw Error($"expected {what}, got '{t.Value}'");
        _current++;
        return t;
    }

    private void ExpectIdentifier(string name)
    {
        if (!IsIdentifier(name)) throw Error($"expected '{name}'" + (_current < _tokens.Count ? $", got '{_tokens[_current].Value}'" : ""));
        _current++;
    }

    private Node? ParseAny()
    {
        var t = _tokens[_current];
        switch (t.Type)
        {
            case TokenType.Comment:
                _current++;
                return null;
            case TokenType.Text:
                _current++;
                return new TextNode(t.Value, t.Line);
            case TokenType.OpenStatement:
                return ParseStatement();
            case TokenType.OpenExpression:
            {
                _current++;
                var e = ParseExpression();
                Expect(TokenType.CloseExpression, "'}}'");
                return new OutputNode(e, t.Line);
            }
            default:
                throw Error($"unexpected '{t.Value}'");
        }
    }

    private List<Node> ParseBodyUntil(params string[] ends)
    {
        var body = new List<Node>();
        while (!IsStatement(ends))
        {
            if (_current >= _tokens.Count) throw Error($"missing {{% {string.Join(" / ", ends)} %}}");
            if (ParseAny() is { } n) body.Add(n);
        }
        return body;
    }

    private Node ParseStatement()
    {
        Expect(TokenType.OpenStatement, "'{%'");
        if (!Is(TokenType.Identifier)) throw Error("expected a statement name after '{%'");
        var nameToken = _tokens[_current];
        var line = nameToken.Line;
        switch (nameToken.Value)
        {
            case "set":
            {
                _current++;
                var target = ParseExpressionSequence(primary: false);
                if (Is(TokenType.Equals))
                {
                    _current++;
                    var value = ParseExpressionSequence(primary: false);
                    Expect(TokenType.CloseStatement, "'%}'");
                    return new SetNode(target, value, [], line);
                }
                Expect(TokenType.CloseStatement, "'%}'");
                var body = ParseBodyUntil("endset");
                _current++;
                _current++;
                Expect(TokenType.CloseStatement, "'%}'");
                return new SetNode(target, null, body, line);
            }
            case "if":
            {
                _current++;
                var node = ParseIf(line);
                Expect(TokenType.OpenStatement, "'{%'");
                ExpectIdentifier("endif");
                Expect(TokenType.CloseStatement, "'%}'");
                return node;
            }
            case "for":
            {
                _current++;
                var node = ParseFor(line);
                Expect(TokenType.OpenStatement, "'{%'");
                ExpectIdentifier("endfor");
                Expect(TokenType.CloseStatement, "'%}'");
                return node;
            }
            case "break":
                _current++;
                Expect(TokenType.CloseStatement, "'%}'");
                return new BreakNode(line);
            case "continue":
                _current++;
                Expect(TokenType.CloseStatement, "'%}'");
                return new ContinueNode(line);
            case "macro" or "call" or "filter" or "include" or "import" or "from" or "extends" or "block" or "raw" or "with" or "autoescape":
                throw new JinjaUnsupportedException(_name, line, $"the '{nameToken.Value}' statement");
            default:
                throw Error($"unknown statement '{nameToken.Value}'");
        }
    }

    private IfNode ParseIf(int line)
    {
        var test = ParseExpression();
        Expect(TokenType.CloseStatement, "'%}'");
        var body = ParseBodyUntil("elif", "else", "endif");
        var alternate = new List<Node>();
        if (IsStatement("elif"))
        {
            var elifLine = _tokens[_current + 1].Line;
            _current += 2;
            alternate.Add(ParseIf(elifLine));
        }
        else if (IsStatement("else"))
        {
            _current += 2;
            Expect(TokenType.CloseStatement, "'%}'");
            alternate = ParseBodyUntil("endif");
        }
        return new IfNode(test, body, alternate, line);
    }

    private ForNode ParseFor(int line)
    {
        var target = ParseExpressionSequence(primary: true);
        if (target is not (NameExpr or ListExpr { IsTuple: true }))
            throw Error("expected a name or a tuple of names as the loop variable");
        if (!IsIdentifier("in")) throw Error("expected 'in' after the loop variable");
        _current++;
        var iterable = ParseExpression();
        Expr? condition = null;
        if (iterable is SelectExpr select)
        {
            iterable = select.Value;
            condition = select.Condition;
        }
        Expect(TokenType.CloseStatement, "'%}'");
        var body = ParseBodyUntil("endfor", "else");
        var alternate = new List<Node>();
        if (IsStatement("else"))
        {
            _current += 2;
            Expect(TokenType.CloseStatement, "'%}'");
            alternate = ParseBodyUntil("endfor");
        }
        return new ForNode(target, iterable, condition, body, alternate, line);
    }

    private Expr ParseExpressionSequence(bool primary)
    {
        var line = Line;
        var first = primary ? ParsePrimary() : ParseExpression();
        if (!Is(TokenType.Comma)) return first;
        var items = new List<Expr> { first };
        while (Is(TokenType.Comma))
        {
            _current++;
            items.Add(primary ? ParsePrimary() : ParseExpression());
        }
        return new ListExpr(items, IsTuple: true, line);
    }

    private Expr ParseExpression()
    {
        var line = Line;
        var a = ParseOr();
        if (!IsIdentifier("if")) return a;
        _current++;
        var test = ParseOr();
        if (IsIdentifier("else"))
        {
            _current++;
            var b = ParseExpression();
            return new TernaryExpr(test, a, b, line);
        }
        return new SelectExpr(a, test, line);
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (IsIdentifier("or"))
        {
            var line = Line;
            _current++;
            left = new BinaryExpr("or", left, ParseAnd(), line);
        }
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (IsIdentifier("and"))
        {
            var line = Line;
            _current++;
            left = new BinaryExpr("and", left, ParseNot(), line);
        }
        return left;
    }

    private Expr ParseNot()
    {
        if (IsIdentifier("not"))
        {
            var line = Line;
            _current++;
            return new UnaryExpr("not", ParseNot(), line);
        }
        return ParseComparison();
    }

    private Expr ParseComparison()
    {
        var left = ParseAdditive();
        while (true)
        {
            var line = Line;
            string op;
            if (IsIdentifier("not") && IsIdentifier("in", 1))
            {
                op = "not in";
                _current += 2;
            }
            else if (IsIdentifier("in"))
            {
                op = "in";
                _current++;
            }
            else if (Is(TokenType.Comparison))
            {
                op = _tokens[_current++].Value;
            }
            else
            {
                break;
            }
            left = new BinaryExpr(op, left, ParseAdditive(), line);
        }
        return left;
    }

    private Expr ParseAdditive()
    {
        var left = ParseMultiplicative();
        while (Is(TokenType.Additive))
        {
            var t = _tokens[_current++];
            left = new BinaryExpr(t.Value, left, ParseMultiplicative(), t.Line);
        }
        return left;
    }

    private Expr ParseMultiplicative()
    {
        var left = ParsePower();
        while (Is(TokenType.Multiplicative))
        {
            var t = _tokens[_current++];
            left = new BinaryExpr(t.Value, left, ParsePower(), t.Line);
        }
        return left;
    }

    private Expr ParsePower()
    {
        var left = ParseTest();
        while (Is(TokenType.Power))
        {
            var t = _tokens[_current++];
            left = new BinaryExpr(t.Value, left, ParseTest(), t.Line);
        }
        return left;
    }

    private Expr ParseTest()
    {
        var operand = ParseFilter();
        while (IsIdentifier("is"))
        {
            var line = Line;
            _current++;
            var negate = IsIdentifier("not");
            if (negate) _current++;
            if (ParsePrimary() is not NameExpr test) throw Error("expected a test name after 'is'");
            if (Is(TokenType.OpenParen)) throw new JinjaUnsupportedException(_name, line, $"test '{test.Name}' with arguments");
            operand = new TestExpr(operand, negate, test.Name, line);
        }
        return operand;
    }

    private Expr ParseFilter()
    {
        var operand = ParseUnarySign();
        while (Is(TokenType.Pipe))
        {
            var line = Line;
            _current++;
            if (ParsePrimary() is not NameExpr filter) throw Error("expected a filter name after '|'");
            List<Argument>? args = null;
            if (Is(TokenType.OpenParen)) args = ParseArgs();
            operand = new FilterExpr(operand, filter.Name, args, line);
        }
        return operand;
    }

    private Expr ParseUnarySign()
    {
        if (_current < _tokens.Count && _tokens[_current] is { Type: TokenType.Unary or TokenType.Additive, Value: "-" or "+" } t)
        {
            _current++;
            return new UnaryExpr(t.Value, ParseUnarySign(), t.Line);
        }
        return ParseCallMember();
    }

    private Expr ParseCallMember()
    {
        var member = ParseMember(ParsePrimary());
        return Is(TokenType.OpenParen) ? ParseCall(member) : member;
    }

    private Expr ParseCall(Expr callee)
    {
        var line = Line;
        Expr e = new CallExpr(callee, ParseArgs(), line);
        e = ParseMember(e);
        return Is(TokenType.OpenParen) ? ParseCall(e) : e;
    }

    private List<Argument> ParseArgs()
    {
        Expect(TokenType.OpenParen, "'('");
        var args = new List<Argument>();
        var sawKeyword = false;
        while (!Is(TokenType.CloseParen))
        {
            if (_current >= _tokens.Count) throw Error("missing ')'");
            if (Is(TokenType.Power) || (Is(TokenType.Multiplicative) && _tokens[_current].Value == "*"))
                throw new JinjaUnsupportedException(_name, Line, "argument unpacking with * or **");
            var arg = ParseExpression();
            if (Is(TokenType.Equals))
            {
                _current++;
                if (arg is not NameExpr key) throw Error("expected a name before '=' in a keyword argument");
                args.Add(new Argument(key.Name, ParseExpression()));
                sawKeyword = true;
            }
            else
            {
                if (sawKeyword) throw Error("positional arguments must come before keyword arguments");
                args.Add(new Argument(null, arg));
            }
            if (Is(TokenType.Comma)) _current++;
        }
        _current++;
        return args;
    }

    private Expr ParseMember(Expr target)
    {
        while (Is(TokenType.Dot) || Is(TokenType.OpenSquare))
        {
            var op = _tokens[_current++];
            if (op.Type == TokenType.OpenSquare)
            {
                var property = ParseSubscript(op.Line);
                Expect(TokenType.CloseSquare, "']'");
                target = new MemberExpr(target, property, Computed: true, op.Line);
            }
            else
            {
                var property = ParsePrimary();
                if (property is not (NameExpr or LiteralExpr { Value: long })) throw Error("expected a name or an integer after '.'");
                target = new MemberExpr(target, property, Computed: false, op.Line);
            }
        }
        return target;
    }

    private Expr ParseSubscript(int line)
    {
        var slices = new List<Expr?>();
        var isSlice = false;
        while (!Is(TokenType.CloseSquare))
        {
            if (_current >= _tokens.Count) throw Error("missing ']'");
            if (Is(TokenType.Colon))
            {
                slices.Add(null);
                _current++;
                isSlice = true;
            }
            else
            {
                slices.Add(ParseExpression());
                if (Is(TokenType.Colon))
                {
                    _current++;
                    isSlice = true;
                }
            }
        }
        if (slices.Count == 0) throw Error("expected an index or a slice inside '[]'");
        if (!isSlice) return slices[0]!;
        if (slices.Count > 3) throw Error("a slice takes at most three parts");
        return new SliceExpr(slices[0], slices.Count > 1 ? slices[1] : null, slices.Count > 2 ? slices[2] : null, line);
    }

    private Expr ParsePrimary()
    {
        if (_current >= _tokens.Count) throw Error("unexpected end of template");
        var t = _tokens[_current++];
        switch (t.Type)
        {
            case TokenType.Number:
                return t.Value.Contains('.', StringComparison.Ordinal)
                    ? new LiteralExpr(double.Parse(t.Value, CultureInfo.InvariantCulture), t.Line)
                    : new LiteralExpr(long.Parse(t.Value, CultureInfo.InvariantCulture), t.Line);
            case TokenType.String:
            {
                var value = t.Value;
                while (Is(TokenType.String)) value += _tokens[_current++].Value;
                return new LiteralExpr(value, t.Line);
            }
            case TokenType.Identifier:
                return new NameExpr(t.Value, t.Line);
            case TokenType.OpenParen:
            {
                var e = ParseExpressionSequence(primary: false);
                Expect(TokenType.CloseParen, "')'");
                return e;
            }
            case TokenType.OpenSquare:
            {
                var items = new List<Expr>();
                while (!Is(TokenType.CloseSquare))
                {
                    if (_current >= _tokens.Count) throw Error("missing ']'");
                    items.Add(ParseExpression());
                    if (Is(TokenType.Comma)) _current++;
                }
                _current++;
                return new ListExpr(items, IsTuple: false, t.Line);
            }
            case TokenType.OpenCurly:
            {
                var items = new List<(Expr, Expr)>();
                while (!Is(TokenType.CloseCurly))
                {
                    if (_current >= _tokens.Count) throw Error("missing '}'");
                    var key = ParseExpression();
                    Expect(TokenType.Colon, "':' between a key and its value");
                    items.Add((key, ParseExpression()));
                    if (Is(TokenType.Comma)) _current++;
                }
                _current++;
                return new DictExpr(items, t.Line);
            }
            default:
                _current--;
                throw Error($"unexpected '{t.Value}'");
        }
    }
}
