using System.Globalization;
using System.Text;
using static SafeTune.Models.Chat.Jinja.JinjaValue;

namespace SafeTune.Models.Chat.Jinja;

/// <summary>Variables of one scope; a for loop opens a child scope, as in Jinja.</summary>
internal sealed class Scope(Scope? parent)
{
    private readonly Dictionary<string, object?> _vars = new(StringComparer.Ordinal);

    public void Set(string name, object? value) => _vars[name] = value;

    public object? Lookup(string name)
    {
        for (var s = this; s is not null; s = s._parent)
            if (s._vars.TryGetValue(name, out var v)) return v;
        return JUndefined.Instance;
    }

    private readonly Scope? _parent = parent;
}

/// <summary>
/// Evaluates a parsed template with the semantics of Hugging Face's reference interpreter (@huggingface/jinja): its
/// truthiness, its string forms of values, its operators, filters and tests.
/// </summary>
internal sealed class JinjaInterpreter(string templateName, Func<DateTime> clock)
{
    private sealed class BreakSignal : Exception;

    private sealed class ContinueSignal : Exception;

    private static readonly string[] Months =
        ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

    /// <summary>Filters this interpreter knows; any other name is reported as unsupported.</summary>
    private static readonly HashSet<string> KnownFilters =
    [
        "safe", "tojson", "list", "first", "last", "length", "count", "reverse", "sort", "join", "string", "unique", "upper", "lower",
        "title", "capitalize", "trim", "indent", "int", "float", "abs", "items", "bool", "default", "d", "selectattr", "rejectattr",
        "map", "replace", "keys", "values", "dictsort", "get",
    ];

    private static readonly HashSet<string> KnownTests =
    [
        "boolean", "callable", "odd", "even", "false", "true", "none", "string", "number", "integer", "iterable", "mapping", "sequence",
        "lower", "upper", "defined", "undefined", "equalto", "eq",
    ];

    public string Render(List<Node> body, Scope globals)
    {
        AddBuiltins(globals);
        return RenderBlock(body, globals);
    }

    private void AddBuiltins(Scope g)
    {
        g.Set("namespace", new JFunction(Namespace));
        g.Set("false", false);
        g.Set("true", true);
        g.Set("none", null);
        g.Set("False", false);
        g.Set("True", true);
        g.Set("None", null);
        g.Set("raise_exception", new JFunction((args, _) =>
            throw new JinjaRaiseError(args.Count > 0 ? (args[0] is string s ? s : Output(args[0])) : "")));
        g.Set("range", new JFunction(Range));
        g.Set("strftime_now", new JFunction((args, _) =>
            args.Count > 0 && args[0] is string f ? Strftime(clock(), f) : throw new JinjaRuntimeError("strftime_now() needs a format string")));
    }

    // ---- statements ------------------------------------------------------------------------------------------------

    private string RenderBlock(List<Node> nodes, Scope scope)
    {
        var sb = new StringBuilder();
        foreach (var node in nodes)
        {
            switch (node)
            {
                case TextNode t:
                    sb.Append(t.Text);
                    break;
                case IfNode i:
                    sb.Append(RenderBlock(Truthy(Eval(i.Test, scope)) ? i.Body : i.Else, scope));
                    break;
                case ForNode f:
                    sb.Append(RenderFor(f, scope));
                    break;
                case SetNode s:
                    ExecuteSet(s, scope);
                    break;
                case BreakNode:
                    throw new BreakSignal();
                case ContinueNode:
                    throw new ContinueSignal();
                case OutputNode o:
                    sb.Append(Output(Eval(o.Value, scope)));
                    break;
                default:
                    throw Fail(node.Line, new JinjaRuntimeError($"unexpected node {node.GetType().Name}"));
            }
        }
        return sb.ToString();
    }

    private void ExecuteSet(SetNode node, Scope scope)
    {
        var value = node.Value is not null ? Eval(node.Value, scope) : RenderBlock(node.Body, scope);
        switch (node.Target)
        {
            case NameExpr n:
                scope.Set(n.Name, value);
                break;
            case ListExpr { IsTuple: true } tuple:
            {
                if (value is not JList list) throw Fail(node.Line, new JinjaRuntimeError($"cannot unpack a {TypeName(value)} in set"));
                if (list.Count != tuple.Items.Count)
                    throw Fail(node.Line, new JinjaRuntimeError($"too {(tuple.Items.Count > list.Count ? "few" : "many")} items to unpack in set"));
                for (var i = 0; i < list.Count; i++)
                {
                    if (tuple.Items[i] is not NameExpr name) throw Fail(node.Line, new JinjaRuntimeError("can only unpack into names"));
                    scope.Set(name.Name, list[i]);
                }
                break;
            }
            case MemberExpr { Computed: false, Property: NameExpr property } member:
            {
                var target = Eval(member.Target, scope);
                if (target is not JNamespace ns) throw Fail(node.Line, new JinjaRuntimeError("cannot assign an attribute on anything but a namespace()"));
                ns.Items[property.Name] = value;
                break;
            }
            default:
                throw Fail(node.Line, new JinjaRuntimeError("invalid target of set"));
        }
    }

    private string RenderFor(ForNode node, Scope outer)
    {
        var scope = new Scope(outer);
        var iterable = Eval(node.Iterable, scope);
        List<object?> candidates = iterable switch
        {
            JList l => [.. l],
            JDict d => [.. d.Items.Keys],
            _ => throw Fail(node.Line, new JinjaRuntimeError($"cannot loop over a {TypeName(iterable)}")),
        };

        var items = new List<object?>();
        foreach (var current in candidates)
        {
            if (node.Target is ListExpr tuple)
            {
                if (current is not JList values) throw Fail(node.Line, new JinjaRuntimeError($"cannot unpack a {TypeName(current)}"));
                if (values.Count != tuple.Items.Count)
                    throw Fail(node.Line, new JinjaRuntimeError($"too {(tuple.Items.Count > values.Count ? "few" : "many")} items to unpack"));
            }
            if (node.Condition is not null)
            {
                var testScope = new Scope(scope);
                Bind(node, current, testScope);
                if (!Truthy(Eval(node.Condition, testScope))) continue;
            }
            items.Add(current);
        }

        var sb = new StringBuilder();
        var noIteration = true;
        for (var i = 0; i < items.Count; i++)
        {
            var loop = new JDict(JDictKind.Loop);
            loop.Items["index"] = (long)(i + 1);
            loop.Items["index0"] = (long)i;
            loop.Items["revindex"] = (long)(items.Count - i);
            loop.Items["revindex0"] = (long)(items.Count - i - 1);
            loop.Items["first"] = i == 0;
            loop.Items["last"] = i == items.Count - 1;
            loop.Items["length"] = (long)items.Count;
            loop.Items["previtem"] = i > 0 ? items[i - 1] : JUndefined.Instance;
            loop.Items["nextitem"] = i < items.Count - 1 ? items[i + 1] : JUndefined.Instance;
            scope.Set("loop", loop);
            Bind(node, items[i], scope);
            try
            {
                sb.Append(RenderBlock(node.Body, scope));
            }
            catch (ContinueSignal)
            {
                continue;
            }
            catch (BreakSignal)
            {
                break;
            }
            noIteration = false;
        }
        if (noIteration) sb.Append(RenderBlock(node.Else, scope));
        return sb.ToString();
    }

    private void Bind(ForNode node, object? current, Scope scope)
    {
        if (node.Target is NameExpr n)
        {
            scope.Set(n.Name, current);
            return;
        }
        var tuple = (ListExpr)node.Target;
        var values = (JList)current!;
        for (var j = 0; j < tuple.Items.Count; j++)
        {
            if (tuple.Items[j] is not NameExpr name) throw Fail(node.Line, new JinjaRuntimeError("can only unpack into names"));
            scope.Set(name.Name, values[j]);
        }
    }

    // ---- expressions -----------------------------------------------------------------------------------------------

    private JinjaException Fail(int line, Exception e) => e switch
    {
        JinjaException je => je,
        JinjaRaiseError r => new JinjaRaisedException(templateName, line, r.Message),
        JinjaUnsupportedError u => new JinjaUnsupportedException(templateName, line, u.Feature),
        _ => new JinjaException(templateName, line, e.Message, e),
    };

    private object? Eval(Expr expr, Scope scope)
    {
        try
        {
            return EvalCore(expr, scope);
        }
        catch (JinjaRuntimeError e)
        {
            throw Fail(expr.Line, e);
        }
    }

    private object? EvalCore(Expr expr, Scope scope)
    {
        switch (expr)
        {
            case LiteralExpr l:
                return l.Value;
            case NameExpr n:
                return scope.Lookup(n.Name);
            case ListExpr l:
                return new JList(l.Items.Select(x => Eval(x, scope))) { IsTuple = l.IsTuple };
            case DictExpr d:
            {
                var dict = new JDict();
                foreach (var (k, v) in d.Items)
                {
                    var key = Eval(k, scope);
                    if (key is not string s) throw new JinjaRuntimeError($"a mapping key must be a string, not a {TypeName(key)}");
                    dict.Items[s] = Eval(v, scope);
                }
                return dict;
            }
            case MemberExpr m:
                return EvalMember(m, scope);
            case CallExpr c:
            {
                var (args, kwargs) = EvalArgs(c.Args, scope);
                var fn = Eval(c.Callee, scope);
                if (fn is not JFunction f)
                {
                    if (c.Callee is NameExpr name && fn is JUndefined) throw new JinjaUnsupportedError($"function '{name.Name}'");
                    if (c.Callee is MemberExpr { Computed: false, Property: NameExpr method } && fn is JUndefined)
                        throw new JinjaUnsupportedError($"method '{method.Name}'");
                    throw new JinjaRuntimeError($"cannot call a {TypeName(fn)}");
                }
                return f.Invoke(args, kwargs);
            }
            case FilterExpr f:
                return ApplyFilter(Eval(f.Operand, scope), f, scope);
            case TestExpr t:
            {
                var operand = Eval(t.Operand, scope);
                var result = Test(t.Name, operand, null);
                return t.Negate ? !result : result;
            }
            case UnaryExpr u:
            {
                var v = Eval(u.Operand, scope);
                if (u.Op == "not") return !Truthy(v);
                var sign = u.Op == "-" ? -1 : 1;
                return v switch
                {
                    long l => (object)(sign * l),
                    double d => sign * d,
                    bool b => (long)(sign * (b ? 1 : 0)),
                    _ => throw new JinjaRuntimeError($"unary '{u.Op}' needs a number, not a {TypeName(v)}"),
                };
            }
            case TernaryExpr t:
                return Truthy(Eval(t.Condition, scope)) ? Eval(t.IfTrue, scope) : Eval(t.IfFalse, scope);
            case SelectExpr s:
                return Truthy(Eval(s.Condition, scope)) ? Eval(s.Value, scope) : JUndefined.Instance;
            case BinaryExpr b:
                return EvalBinary(b, scope);
            case SliceExpr:
                throw new JinjaRuntimeError("a slice outside '[]'");
            default:
                throw new JinjaRuntimeError($"unexpected expression {expr.GetType().Name}");
        }
    }

    private (List<object?> Args, OrderedDictionary<string, object?> Kwargs) EvalArgs(List<Argument> args, Scope scope)
    {
        var positional = new List<object?>();
        var kwargs = new OrderedDictionary<string, object?>(StringComparer.Ordinal);
        foreach (var a in args)
        {
            if (a.Keyword is null) positional.Add(Eval(a.Value, scope));
            else if (!kwargs.TryAdd(a.Keyword, Eval(a.Value, scope))) throw new JinjaRuntimeError($"keyword argument '{a.Keyword}' given twice");
        }
        return (positional, kwargs);
    }

    private object? EvalMember(MemberExpr m, Scope scope)
    {
        var target = Eval(m.Target, scope);
        object? property;
        if (m.Computed)
        {
            if (m.Property is SliceExpr slice) return EvalSlice(target, slice, scope);
            property = Eval(m.Property, scope);
        }
        else
        {
            property = m.Property is NameExpr n ? n.Name : ((LiteralExpr)m.Property).Value;
        }

        object? value;
        switch (target)
        {
            case JDict or JNamespace:
            {
                if (property is not string key) throw new JinjaRuntimeError($"cannot look up a {TypeName(property)} in a mapping");
                var items = target is JDict d ? d.Items : ((JNamespace)target).Items;
                if (items.TryGetValue(key, out value)) return value;
                value = target is JDict dict ? DictBuiltin(dict, key) : null;
                break;
            }
            case JList list:
                value = property switch
                {
                    long i => At(list.Count, i) is int k ? list[k] : JUndefined.Instance,
                    string s => s == "length" ? (long)list.Count : null,
                    _ => throw new JinjaRuntimeError($"cannot index a list with a {TypeName(property)}"),
                };
                break;
            case string str:
                value = property switch
                {
                    long i => At(str.Length, i) is int k ? str[k].ToString() : JUndefined.Instance,
                    string s => StringBuiltin(str, s),
                    _ => throw new JinjaRuntimeError($"cannot index a string with a {TypeName(property)}"),
                };
                break;
            default:
                if (property is not string) throw new JinjaRuntimeError($"cannot index a {TypeName(target)} with a {TypeName(property)}");
                value = null;
                break;
        }
        return value ?? JUndefined.Instance;

        static int? At(int count, long i)
        {
            var k = i < 0 ? count + i : i;
            return k >= 0 && k < count ? (int)k : null;
        }
    }

    private object? EvalSlice(object? target, SliceExpr slice, Scope scope)
    {
        long? Part(Expr? e)
        {
            if (e is null) return null;
            var v = Eval(e, scope);
            return v switch
            {
                long l => l,
                JUndefined => null,
                _ => throw new JinjaRuntimeError("slice bounds must be integers"),
            };
        }
        var start = Part(slice.Start);
        var stop = Part(slice.Stop);
        var step = Part(slice.Step) ?? 1;
        if (step == 0) throw new JinjaRuntimeError("slice step cannot be zero");
        return target switch
        {
            JList list => new JList(SliceIndices(list.Count, start, stop, step).Select(i => list[i])),
            string s => string.Concat(SliceIndices(s.Length, start, stop, step).Select(i => s[i])),
            _ => throw new JinjaRuntimeError($"cannot slice a {TypeName(target)}"),
        };
    }

    private static IEnumerable<int> SliceIndices(int length, long? startArg, long? stopArg, long step)
    {
        long start, stop;
        if (step > 0)
        {
            start = startArg is { } a ? (a < 0 ? Math.Max(length + a, 0) : Math.Min(a, length)) : 0;
            stop = stopArg is { } b ? (b < 0 ? Math.Max(length + b, 0) : Math.Min(b, length)) : length;
            for (var i = start; i < stop; i += step) yield return (int)i;
        }
        else
        {
            start = startArg is { } a ? (a < 0 ? Math.Max(length + a, -1) : Math.Min(a, length - 1)) : length - 1;
            stop = stopArg is { } b ? (b < -1 ? Math.Max(length + b, -1) : Math.Min(b, length - 1)) : -1;
            for (var i = start; i > stop; i += step) yield return (int)i;
        }
    }

    private object? EvalBinary(BinaryExpr b, Scope scope)
    {
        var left = Eval(b.Left, scope);
        switch (b.Op)
        {
            case "and": return Truthy(left) ? Eval(b.Right, scope) : left;
            case "or": return Truthy(left) ? left : Eval(b.Right, scope);
        }
        var right = Eval(b.Right, scope);
        switch (b.Op)
        {
            case "==": return LooseEquals(left, right);
            case "!=": return !LooseEquals(left, right);
        }

        if (left is long or double && right is long or double && b.Op is not ("~" or "**"))
        {
            var isFloat = left is double || right is double;
            var x = Convert.ToDouble(left, CultureInfo.InvariantCulture);
            var y = Convert.ToDouble(right, CultureInfo.InvariantCulture);
            switch (b.Op)
            {
                case "+": return isFloat ? x + y : (object)((long)left! + (long)right!);
                case "-": return isFloat ? x - y : (object)((long)left! - (long)right!);
                case "*": return isFloat ? x * y : (object)((long)left! * (long)right!);
                case "/": return x / y;
                case "//": return isFloat ? Math.Floor(x / y) : (object)(long)Math.Floor(x / y);
                case "%":
                    if (isFloat) return x % y;
                    if ((long)right! == 0) throw new JinjaRuntimeError("modulo by zero");
                    return (long)left! % (long)right!;
                case "<": return x < y;
                case ">": return x > y;
                case ">=": return x >= y;
                case "<=": return x <= y;
            }
        }
        else if (left is JUndefined || right is JUndefined)
        {
            if (right is JUndefined && b.Op is "in" or "not in") return b.Op == "not in";
            if (b.Op == "~" && left is not null && right is not null)
                return (left is JUndefined ? "" : Raw(left)) + (right is JUndefined ? "" : Raw(right));
            throw new JinjaRuntimeError($"cannot apply '{b.Op}' to an undefined value");
        }
        else if (left is null || right is null)
        {
            throw new JinjaRuntimeError($"cannot apply '{b.Op}' to none");
        }
        else if (b.Op == "~")
        {
            return Raw(left) + Raw(right);
        }
        else if (b.Op == "**" && left is long or double or bool && right is long or double or bool)
        {
            var x = Num(left);
            var y = Num(right);
            var r = Math.Pow(x, y);
            if (!double.IsFinite(r)) throw new JinjaRuntimeError("exponentiation result is not a finite number");
            return left is double || right is double || y < 0 ? r : (object)(long)r;
        }
        else if (left is JList ll && right is JList rl)
        {
            if (b.Op == "+") return new JList(ll.Concat(rl));
        }
        else if (right is JList list && b.Op is "in" or "not in")
        {
            var member = list.Any(x => StrictEquals(x, left));
            return b.Op == "in" ? member : !member;
        }

        if ((left is string || right is string) && b.Op == "+") return Raw(left) + Raw(right);
        if (left is string ls && right is string rs && b.Op is "in" or "not in")
            return b.Op == "in" ? rs.Contains(ls, StringComparison.Ordinal) : !rs.Contains(ls, StringComparison.Ordinal);
        if (left is string key && right is JDict d && b.Op is "in" or "not in")
            return b.Op == "in" ? d.Items.ContainsKey(key) : !d.Items.ContainsKey(key);
        throw new JinjaRuntimeError($"operator '{b.Op}' is not defined between a {TypeName(left)} and a {TypeName(right)}");
    }

    private static double Num(object? v) => v switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => double.NaN,
    };

    /// <summary>JavaScript's <c>==</c> on the underlying values (numbers and strings coerce; containers by reference).</summary>
    private static bool LooseEquals(object? a, object? b)
    {
        if (a is null or JUndefined) return b is null or JUndefined;
        if (b is null or JUndefined) return false;
        if (a is string sa && b is string sb) return sa == sb;
        if (a is long or double or bool or string && b is long or double or bool or string)
        {
            var x = a is string s1 ? ParseJsNumber(s1) : Num(a);
            var y = b is string s2 ? ParseJsNumber(s2) : Num(b);
            return x == y;
        }
        return ReferenceEquals(a, b);
    }

    private static double ParseJsNumber(string s)
    {
        var t = JinjaLexer.Trim(s);
        if (t.Length == 0) return 0;
        return double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : double.NaN;
    }

    /// <summary>JavaScript's <c>===</c> on the underlying values.</summary>
    private static bool StrictEquals(object? a, object? b) => (a, b) switch
    {
        (null, null) => true,
        (JUndefined, JUndefined) => true,
        (string x, string y) => x == y,
        (bool x, bool y) => x == y,
        (long or double, long or double) => Num(a) == Num(b),
        _ => ReferenceEquals(a, b),
    };

    // ---- builtins: methods -----------------------------------------------------------------------------------------

    private static object? DictBuiltin(JDict dict, string name) => name switch
    {
        "get" => new JFunction((args, _) =>
        {
            if (args.Count == 0 || args[0] is not string key) throw new JinjaRuntimeError("get() needs a string key");
            return dict.Items.TryGetValue(key, out var v) ? v : args.Count > 1 ? args[1] : null;
        }),
        "items" => new JFunction((_, _) => Items(dict)),
        "keys" => new JFunction((_, _) => new JList(dict.Items.Keys)),
        "values" => new JFunction((_, _) => new JList(dict.Items.Values)),
        _ => null,
    };

    private static JList Items(JDict dict) => new(dict.Items.Select(kv => (object?)new JList([kv.Key, kv.Value])));

    private static object? StringBuiltin(string s, string name) => name switch
    {
        "length" => (long)s.Length,
        "upper" => new JFunction((_, _) => s.ToUpperInvariant()),
        "lower" => new JFunction((_, _) => s.ToLowerInvariant()),
        "strip" => new JFunction((args, _) => args.Count > 0 && args[0] is string chars ? s.Trim(chars.ToCharArray()) : JinjaLexer.Trim(s)),
        "rstrip" => new JFunction((args, _) => args.Count > 0 && args[0] is string chars ? s.TrimEnd(chars.ToCharArray()) : JinjaLexer.TrimEnd(s)),
        "lstrip" => new JFunction((args, _) => args.Count > 0 && args[0] is string chars ? s.TrimStart(chars.ToCharArray()) : JinjaLexer.TrimStart(s)),
        "title" => new JFunction((_, _) => TitleCase(s)),
        "capitalize" => new JFunction((_, _) => Capitalize(s)),
        "startswith" => new JFunction((args, _) => Affix(s, args, "startswith", (x, p) => x.StartsWith(p, StringComparison.Ordinal))),
        "endswith" => new JFunction((args, _) => Affix(s, args, "endswith", (x, p) => x.EndsWith(p, StringComparison.Ordinal))),
        "split" => new JFunction((args, _) => Split(s, args)),
        "replace" => new JFunction((args, kwargs) => Replace(s, args, kwargs)),
        _ => null,
    };

    private static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..];

    private static string TitleCase(string s)
    {
        var chars = s.ToCharArray();
        for (var i = 0; i < chars.Length; i++)
        {
            var isWord = char.IsAsciiLetterOrDigit(chars[i]) || chars[i] == '_';
            var prevWord = i > 0 && (char.IsAsciiLetterOrDigit(chars[i - 1]) || chars[i - 1] == '_');
            if (isWord && !prevWord) chars[i] = char.ToUpperInvariant(chars[i]);
        }
        return new string(chars);
    }

    private static bool Affix(string s, List<object?> args, string name, Func<string, string, bool> test)
    {
        if (args.Count == 0) throw new JinjaRuntimeError($"{name}() needs an argument");
        return args[0] switch
        {
            string p => test(s, p),
            JList list => list.Any(x => x is string p ? test(s, p) : throw new JinjaRuntimeError($"{name}() tuple elements must be strings")),
            _ => throw new JinjaRuntimeError($"{name}() needs a string or a tuple of strings"),
        };
    }

    private static JList Split(string s, List<object?> args)
    {
        var sep = args.Count > 0 ? args[0] : null;
        var maxsplit = args.Count > 1 ? args[1] as long? ?? throw new JinjaRuntimeError("split() maxsplit must be an integer") : -1;
        var result = new List<string>();
        if (sep is null)
        {
            var text = JinjaLexer.TrimStart(s);
            var i = 0;
            while (i < text.Length)
            {
                while (i < text.Length && JinjaLexer.IsWhitespace(text[i])) i++;
                if (i >= text.Length) break;
                if (maxsplit >= 0 && result.Count >= maxsplit)
                {
                    result.Add(text[i..]);
                    break;
                }
                var start = i;
                while (i < text.Length && !JinjaLexer.IsWhitespace(text[i])) i++;
                result.Add(text[start..i]);
            }
        }
        else if (sep is string sepString)
        {
            if (sepString.Length == 0) throw new JinjaRuntimeError("split() separator is empty");
            result.AddRange(s.Split(sepString));
            if (maxsplit >= 0 && result.Count > maxsplit)
            {
                var tail = string.Join(sepString, result.Skip((int)maxsplit));
                result.RemoveRange((int)maxsplit, result.Count - (int)maxsplit);
                result.Add(tail);
            }
        }
        else
        {
            throw new JinjaRuntimeError("split() separator must be a string or none");
        }
        return new JList(result);
    }

    private static string Replace(string s, List<object?> args, OrderedDictionary<string, object?> kwargs)
    {
        if (args.Count < 2 || args[0] is not string oldValue || args[1] is not string newValue)
            throw new JinjaRuntimeError("replace() needs two strings");
        var countArg = args.Count > 2 ? args[2] : kwargs.TryGetValue("count", out var c) ? c : null;
        long? count = countArg switch
        {
            null => null,
            long l => l,
            _ => throw new JinjaRuntimeError("replace() count must be an integer"),
        };
        if (count == 0) return s;
        var remaining = count is null or < 0 ? long.MaxValue : count.Value;
        if (oldValue.Length == 0)
        {
            var sb = new StringBuilder();
            for (var i = 0; i <= s.Length; i++)
            {
                if (remaining > 0)
                {
                    sb.Append(newValue);
                    remaining--;
                }
                if (i < s.Length) sb.Append(s[i]);
            }
            return sb.ToString();
        }
        var outText = new StringBuilder();
        var pos = 0;
        while (remaining > 0)
        {
            var idx = s.IndexOf(oldValue, pos, StringComparison.Ordinal);
            if (idx < 0) break;
            outText.Append(s, pos, idx - pos).Append(newValue);
            pos = idx + oldValue.Length;
            remaining--;
        }
        return outText.Append(s, pos, s.Length - pos).ToString();
    }

    // ---- builtins: functions ---------------------------------------------------------------------------------------

    private static object? Namespace(List<object?> args, OrderedDictionary<string, object?> kwargs)
    {
        if (args.Count > 1) throw new JinjaRuntimeError($"namespace() takes at most 1 positional argument, got {args.Count}");
        var ns = new JNamespace();
        if (args.Count == 1)
        {
            switch (args[0])
            {
                case JDict d:
                    foreach (var (k, v) in d.Items) ns.Items[k] = v;
                    break;
                case JList pairs:
                    foreach (var pair in pairs)
                    {
                        if (pair is not JList { Count: 2 } kv || kv[0] is not string key)
                            throw new JinjaRuntimeError("namespace() expects pairs of a string key and a value");
                        ns.Items[key] = kv[1];
                    }
                    break;
                default:
                    throw new JinjaRuntimeError($"namespace() cannot read a {TypeName(args[0])}");
            }
        }
        foreach (var (k, v) in kwargs) ns.Items[k] = v;
        return ns;
    }

    private static object? Range(List<object?> args, OrderedDictionary<string, object?> kwargs)
    {
        if (args.Count is 0 or > 3 || args.Any(a => a is not long)) throw new JinjaRuntimeError("range() takes one to three integers");
        long start = 0, stop, step = 1;
        if (args.Count == 1) stop = (long)args[0]!;
        else
        {
            start = (long)args[0]!;
            stop = (long)args[1]!;
            if (args.Count == 3) step = (long)args[2]!;
        }
        if (step == 0) throw new JinjaRuntimeError("range() step must not be zero");
        var result = new JList();
        if (step > 0)
            for (var i = start; i < stop; i += step) result.Add(i);
        else
            for (var i = start; i > stop; i += step) result.Add(i);
        return result;
    }

    /// <summary>The <c>strftime</c> subset the reference implements: %Y %m %d %b %B %H %M %%; other codes stay as written.</summary>
    internal static string Strftime(DateTime date, string format)
    {
        var sb = new StringBuilder();
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                sb.Append(format[i]);
                continue;
            }
            var code = format[i + 1];
            string? part = code switch
            {
                'Y' => date.Year.ToString(CultureInfo.InvariantCulture),
                'm' => date.Month.ToString("00", CultureInfo.InvariantCulture),
                'd' => date.Day.ToString("00", CultureInfo.InvariantCulture),
                'b' => Months[date.Month - 1][..3],
                'B' => Months[date.Month - 1],
                'H' => date.Hour.ToString("00", CultureInfo.InvariantCulture),
                'M' => date.Minute.ToString("00", CultureInfo.InvariantCulture),
                '%' => "%",
                _ => null,
            };
            if (part is null)
            {
                sb.Append(format[i]);
                continue;
            }
            sb.Append(part);
            i++;
        }
        return sb.ToString();
    }

    // ---- filters and tests -----------------------------------------------------------------------------------------

    private bool Test(string name, object? a, object? b) => name switch
    {
        "boolean" => a is bool,
        "callable" => a is JFunction,
        "odd" => a is long l ? l % 2 != 0 : throw new JinjaRuntimeError($"cannot test 'odd' on a {TypeName(a)}"),
        "even" => a is long l2 ? l2 % 2 == 0 : throw new JinjaRuntimeError($"cannot test 'even' on a {TypeName(a)}"),
        "false" => a is false,
        "true" => a is true,
        "none" => a is null,
        "string" => a is string,
        "number" => a is long or double,
        "integer" => a is long,
        "iterable" => a is JList or string,
        "mapping" => a is JDict,
        "sequence" => a is JList or JDict or string,
        "lower" => a is string s && s == s.ToLowerInvariant(),
        "upper" => a is string s2 && s2 == s2.ToUpperInvariant(),
        "defined" => a is not JUndefined,
        "undefined" => a is JUndefined,
        "equalto" or "eq" => StrictEquals(a, b),
        _ => throw new JinjaUnsupportedError($"test '{name}'"),
    };

    private object? ApplyFilter(object? operand, FilterExpr f, Scope scope)
    {
        var name = f.Name;
        if (!KnownFilters.Contains(name)) throw new JinjaUnsupportedError($"filter '{name}'");
        if (f.Args is null)
        {
            if (name == "safe") return operand;
            if (name == "tojson") return ToJson(operand, null, false, false, null, 0);
            switch (operand)
            {
                case JList list:
                    return name switch
                    {
                        "list" => list,
                        "first" => list.Count > 0 ? list[0] : JUndefined.Instance,
                        "last" => list.Count > 0 ? list[^1] : JUndefined.Instance,
                        "length" or "count" => (long)list.Count,
                        "reverse" => new JList(Enumerable.Reverse(list)),
                        "sort" => new JList(list.Order(Comparer<object?>.Create((x, y) => Compare(x, y, false)))),
                        "join" => string.Concat(list.Select(Output)),
                        "string" => ToJson(list, null, false, false, null, 0, undefinedAsNull: false),
                        "unique" => Unique(list),
                        _ => throw new JinjaRuntimeError($"filter '{name}' does not apply to a list"),
                    };
                case string s:
                    return name switch
                    {
                        "length" or "count" => (long)s.Length,
                        "upper" => s.ToUpperInvariant(),
                        "lower" => s.ToLowerInvariant(),
                        "title" => TitleCase(s),
                        "capitalize" => Capitalize(s),
                        "trim" => JinjaLexer.Trim(s),
                        "indent" => string.Join('\n', s.Split('\n').Select((x, i) => i == 0 || x.Length == 0 ? x : "    " + x)),
                        "join" or "string" => s,
                        "int" => ParseJsInt(s) ?? 0L,
                        "float" => double.TryParse(JinjaLexer.Trim(s), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : 0.0,
                        _ => throw new JinjaRuntimeError($"filter '{name}' does not apply to a string"),
                    };
                case long or double:
                    return name switch
                    {
                        "abs" => operand is long l ? (object)Math.Abs(l) : Math.Abs((double)operand),
                        "int" => operand is long l2 ? (object)l2 : (long)Math.Truncate((double)operand),
                        "float" => Num(operand),
                        "string" => Output(operand),
                        _ => throw new JinjaRuntimeError($"filter '{name}' does not apply to a number"),
                    };
                case JDict dict:
                    return name switch
                    {
                        "items" => Items(dict),
                        "length" or "count" => (long)dict.Items.Count,
                        _ => DictBuiltin(dict, name) is JFunction fn ? fn.Invoke([], new OrderedDictionary<string, object?>())
                            : throw new JinjaRuntimeError($"filter '{name}' does not apply to a mapping"),
                    };
                case bool b:
                    return name switch
                    {
                        "bool" => b,
                        "int" => b ? 1L : 0L,
                        "float" => b ? 1.0 : 0.0,
                        "string" => b ? "true" : "false",
                        _ => throw new JinjaRuntimeError($"filter '{name}' does not apply to a boolean"),
                    };
                default:
                    throw new JinjaRuntimeError($"filter '{name}' does not apply to a {TypeName(operand)}");
            }
        }

        var (args, kwargs) = EvalArgs(f.Args, scope);
        object? Arg(int i, string key, object? fallback) => i < args.Count ? args[i] : kwargs.TryGetValue(key, out var v) ? v : fallback;
        switch (name)
        {
            case "tojson":
            {
                var indent = kwargs.TryGetValue("indent", out var ind) ? ind : null;
                if (indent is not (null or long)) throw new JinjaRuntimeError("tojson indent must be an integer");
                var ensureAscii = kwargs.TryGetValue("ensure_ascii", out var ea) ? ea as bool? ?? throw new JinjaRuntimeError("tojson ensure_ascii must be a boolean") : false;
                var sortKeys = kwargs.TryGetValue("sort_keys", out var sk) ? sk as bool? ?? throw new JinjaRuntimeError("tojson sort_keys must be a boolean") : false;
                (string, string)? separators = null;
                if (kwargs.TryGetValue("separators", out var sep) && sep is not null)
                {
                    if (sep is not JList { Count: 2 } pair || pair[0] is not string a || pair[1] is not string c)
                        throw new JinjaRuntimeError("tojson separators must be two strings");
                    separators = (a, c);
                }
                return ToJson(operand, (int?)(long?)indent, ensureAscii, sortKeys, separators, 0);
            }
            case "join":
            {
                IEnumerable<string> parts = operand switch
                {
                    string s => s.Select(ch => ch.ToString()),
                    JList list => list.Select(Output),
                    _ => throw new JinjaRuntimeError($"filter 'join' does not apply to a {TypeName(operand)}"),
                };
                var separator = Arg(0, "separator", "") as string ?? throw new JinjaRuntimeError("join separator must be a string");
                return string.Join(separator, parts);
            }
            case "int" or "float":
            {
                var fallback = Arg(0, "default", name == "int" ? 0L : 0.0);
                return operand switch
                {
                    string s when name == "int" => ParseJsInt(s) is long v ? (object)v : fallback,
                    string s => double.TryParse(JinjaLexer.Trim(s), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : fallback,
                    long or double => name == "int" ? (operand is long l ? l : (long)Math.Truncate((double)operand)) : (object)Num(operand),
                    bool b => name == "int" ? (b ? 1L : 0L) : (object)(b ? 1.0 : 0.0),
                    _ => throw new JinjaRuntimeError($"filter '{name}' does not apply to a {TypeName(operand)}"),
                };
            }
            case "default" or "d":
            {
                var fallback = args.Count > 0 ? args[0] : "";
                var boolean = Arg(1, "boolean", false) as bool? ?? throw new JinjaRuntimeError("default's boolean flag must be a boolean");
                return operand is JUndefined || (boolean && !Truthy(operand)) ? fallback : operand;
            }
        }

        switch (operand)
        {
            case JList list:
                switch (name)
                {
                    case "sort":
                    {
                        var reverse = Arg(0, "reverse", false) as bool? ?? throw new JinjaRuntimeError("sort reverse must be a boolean");
                        var caseSensitive = Arg(1, "case_sensitive", false) as bool? ?? throw new JinjaRuntimeError("sort case_sensitive must be a boolean");
                        var attribute = Arg(2, "attribute", null);
                        object? Key(object? item) => attribute switch
                        {
                            null => item,
                            string a => AttributePath(item, a),
                            long i => AttributePath(item, i.ToString(CultureInfo.InvariantCulture)),
                            _ => throw new JinjaRuntimeError("sort attribute must be a string or an integer"),
                        };
                        var sorted = list.Order(Comparer<object?>.Create((x, y) =>
                        {
                            var r = Compare(Key(x), Key(y), caseSensitive);
                            return reverse ? -r : r;
                        }));
                        return new JList(sorted);
                    }
                    case "selectattr" or "rejectattr":
                    {
                        var select = name == "selectattr";
                        if (list.Any(x => x is not (JDict or JNamespace))) throw new JinjaRuntimeError($"'{name}' needs a list of mappings");
                        if (f.Args.Any(a => a.Keyword is not null || a.Value is not LiteralExpr { Value: string }))
                            throw new JinjaRuntimeError($"the arguments of '{name}' must be string literals");
                        if (args.Count == 0) throw new JinjaRuntimeError($"'{name}' needs an attribute name");
                        var attr = (string)args[0]!;
                        var testName = args.Count > 1 ? (string)args[1]! : null;
                        var value = args.Count > 2 ? args[2] : null;
                        return new JList(list.Where(item =>
                        {
                            var items = item is JDict d ? d.Items : ((JNamespace)item!).Items;
                            var result = items.TryGetValue(attr, out var a) && (testName is null ? Truthy(a) : Test(testName, a, value));
                            return select ? result : !result;
                        }));
                    }
                    case "map":
                    {
                        if (!kwargs.TryGetValue("attribute", out var attr))
                            throw new JinjaUnsupportedError("filter 'map' without attribute=");
                        if (attr is not string a) throw new JinjaRuntimeError("map attribute must be a string");
                        kwargs.TryGetValue("default", out var fallback);
                        return new JList(list.Select(item =>
                        {
                            if (item is not (JDict or JNamespace)) throw new JinjaRuntimeError("map needs a list of mappings");
                            var v = AttributePath(item, a);
                            return v is JUndefined ? (kwargs.ContainsKey("default") ? fallback : JUndefined.Instance) : v;
                        }));
                    }
                }
                throw new JinjaRuntimeError($"filter '{name}' does not apply to a list");
            case string s:
                switch (name)
                {
                    case "indent":
                    {
                        var width = Arg(0, "width", 4L);
                        var first = Truthy(Arg(1, "first", false));
                        var blank = Truthy(Arg(2, "blank", false));
                        var pad = width switch
                        {
                            string w => w,
                            long n => new string(' ', (int)Math.Max(0, n)),
                            _ => throw new JinjaRuntimeError("indent width must be an integer or a string"),
                        };
                        return string.Join('\n', s.Split('\n').Select((x, i) => (!first && i == 0) || (!blank && x.Length == 0) ? x : pad + x));
                    }
                    case "replace":
                        return Replace(s, args, kwargs);
                }
                throw new JinjaRuntimeError($"filter '{name}' does not apply to a string");
            case JDict dict:
                if (DictBuiltin(dict, name) is JFunction fn) return fn.Invoke(args, kwargs);
                throw new JinjaRuntimeError($"filter '{name}' does not apply to a mapping");
            default:
                throw new JinjaRuntimeError($"filter '{name}' does not apply to a {TypeName(operand)}");
        }
    }

    private static long? ParseJsInt(string s)
    {
        var t = JinjaLexer.TrimStart(s);
        var i = 0;
        if (i < t.Length && t[i] is '+' or '-') i++;
        var start = i;
        while (i < t.Length && char.IsAsciiDigit(t[i])) i++;
        if (i == start) return null;
        return long.TryParse(t[..i], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v) ? v : null;
    }

    private static JList Unique(JList list)
    {
        var output = new JList();
        foreach (var item in list)
            if (!output.Any(x => StrictEquals(x, item))) output.Add(item);
        return output;
    }

    private static object? AttributePath(object? item, string path)
    {
        var current = item;
        foreach (var part in path.Split('.'))
        {
            current = current switch
            {
                JDict d => d.Items.TryGetValue(part, out var v) ? v : JUndefined.Instance,
                JNamespace n => n.Items.TryGetValue(part, out var v2) ? v2 : JUndefined.Instance,
                JList l when long.TryParse(part, CultureInfo.InvariantCulture, out var i) => i >= 0 && i < l.Count ? l[(int)i] : JUndefined.Instance,
                _ => JUndefined.Instance,
            };
        }
        return current;
    }

    private static int Compare(object? a, object? b, bool caseSensitive)
    {
        if (a is long or double or bool && b is long or double or bool) return Num(a).CompareTo(Num(b));
        if (a is string x && b is string y)
        {
            if (!caseSensitive)
            {
                x = x.ToLowerInvariant();
                y = y.ToLowerInvariant();
            }
            return string.CompareOrdinal(x, y);
        }
        if (a is null or JUndefined && b is null or JUndefined) return 0;
        throw new JinjaRuntimeError($"cannot compare a {TypeName(a)} with a {TypeName(b)}");
    }
}
