using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;
using SafeTune.Onnx;

namespace SafeTune.Models.Chat.Jinja;

/// <summary>Jinja's <c>undefined</c>: what a missing variable or attribute evaluates to (distinct from <c>none</c>).</summary>
internal sealed class JUndefined
{
    public static readonly JUndefined Instance = new();

    private JUndefined()
    {
    }
}

/// <summary>A list (or tuple) value.</summary>
internal sealed class JList : List<object?>
{
    public JList()
    {
    }

    public JList(IEnumerable<object?> items) : base(items)
    {
    }

    public bool IsTuple { get; init; }
}

/// <summary>What a mapping value is: a plain object, a for loop's <c>loop</c>, or keyword arguments.</summary>
internal enum JDictKind
{
    Object,
    Loop,
    Keywords,
}

/// <summary>A mapping with insertion order (JSON objects, <c>{...}</c> literals, <c>loop</c>).</summary>
internal sealed class JDict(JDictKind kind = JDictKind.Object)
{
    public OrderedDictionary<string, object?> Items { get; } = new(StringComparer.Ordinal);

    public JDictKind Kind { get; } = kind;
}

/// <summary>The object <c>namespace(...)</c> returns: the one value a template may assign attributes on.</summary>
internal sealed class JNamespace
{
    public OrderedDictionary<string, object?> Items { get; } = new(StringComparer.Ordinal);
}

/// <summary>A callable: positional arguments and keyword arguments in, a value out.</summary>
internal sealed class JFunction(Func<List<object?>, OrderedDictionary<string, object?>, object?> invoke)
{
    public object? Invoke(List<object?> args, OrderedDictionary<string, object?> kwargs) => invoke(args, kwargs);
}

/// <summary>Conversions between .NET values and template values, and the string forms the reference renders.</summary>
internal static class JinjaValue
{
    /// <summary>Converts a context value: strings, numbers, booleans, null, lists, dictionaries, JSON and chat messages.</summary>
    public static object? From(object? value) => value switch
    {
        null => null,
        JUndefined or JList or JDict or JNamespace or JFunction => value,
        string s => s,
        bool b => b,
        int i => (long)i,
        long l => l,
        float f => (double)f,
        double d => d,
        decimal m => (double)m,
        ChatMessage m => FromMessage(m),
        JsonElement e => FromJson(e),
        IDictionary<string, object?> d => FromDictionary(d),
        IReadOnlyDictionary<string, object?> d => FromPairs(d),
        IEnumerable e => new JList(e.Cast<object?>().Select(From)),
        _ => throw new UserInputException($"a template cannot use a value of type {value.GetType().Name}."),
    };

    private static JDict FromMessage(ChatMessage m)
    {
        var d = new JDict();
        d.Items["role"] = m.Role;
        d.Items["content"] = m.Content;
        return d;
    }

    private static JDict FromDictionary(IDictionary<string, object?> source)
    {
        var d = new JDict();
        foreach (var (k, v) in source) d.Items[k] = From(v);
        return d;
    }

    private static JDict FromPairs(IReadOnlyDictionary<string, object?> source)
    {
        var d = new JDict();
        foreach (var (k, v) in source) d.Items[k] = From(v);
        return d;
    }

    public static object? FromJson(JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.String: return e.GetString();
            case JsonValueKind.True: return true;
            case JsonValueKind.False: return false;
            case JsonValueKind.Null: return null;
            case JsonValueKind.Number:
                // JavaScript has one number type; an integral number is an integer there.
                if (e.TryGetInt64(out var l)) return l;
                var d = e.GetDouble();
                return d == Math.Floor(d) && Math.Abs(d) < 9e15 ? (long)d : d;
            case JsonValueKind.Array:
                return new JList(e.EnumerateArray().Select(FromJson));
            case JsonValueKind.Object:
            {
                var dict = new JDict();
                foreach (var p in e.EnumerateObject()) dict.Items[p.Name] = FromJson(p.Value);
                return dict;
            }
            default:
                return JUndefined.Instance;
        }
    }

    public static string TypeName(object? v) => v switch
    {
        null => "none",
        JUndefined => "undefined",
        string => "string",
        bool => "boolean",
        long => "integer",
        double => "float",
        JList { IsTuple: true } => "tuple",
        JList => "list",
        JDict => "mapping",
        JNamespace => "namespace",
        JFunction => "function",
        _ => v.GetType().Name,
    };

    public static bool Truthy(object? v) => v switch
    {
        null or JUndefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0 && !double.IsNaN(d),
        string s => s.Length > 0,
        JList l => l.Count > 0,
        JDict d => d.Kind == JDictKind.Loop || d.Items.Count > 0,
        _ => true,
    };

    /// <summary>A number as JavaScript's <c>String(n)</c> writes it.</summary>
    public static string JsNumber(double d)
    {
        if (double.IsNaN(d)) return "NaN";
        if (double.IsPositiveInfinity(d)) return "Infinity";
        if (double.IsNegativeInfinity(d)) return "-Infinity";
        if (d == 0) return "0";
        if (d == Math.Floor(d) && Math.Abs(d) < 1e21) return d.ToString("F0", CultureInfo.InvariantCulture);
        var r = d.ToString("R", CultureInfo.InvariantCulture);
        if (r.Contains('E', StringComparison.Ordinal))
        {
            var parts = r.Split('E');
            var exp = int.Parse(parts[1], CultureInfo.InvariantCulture);
            if (exp >= -6 && exp < 21) return ((decimal)d).ToString(CultureInfo.InvariantCulture);
            return parts[0] + "e" + (exp >= 0 ? "+" : "-") + Math.Abs(exp).ToString(CultureInfo.InvariantCulture);
        }
        return r;
    }

    /// <summary>The text <c>{{ v }}</c> writes (the reference's <c>toString</c>).</summary>
    public static string Output(object? v) => v switch
    {
        null or JUndefined => "",
        string s => s,
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => d == Math.Floor(d) && !double.IsInfinity(d) ? (BitConverter.DoubleToInt64Bits(d) == long.MinValue ? "-0.0" : d.ToString("F1", CultureInfo.InvariantCulture)) : JsNumber(d),
        JList or JDict or JNamespace => ToJson(v, null, false, false, null, 0, undefinedAsNull: false),
        JFunction => "[function]",
        _ => v.ToString() ?? "",
    };

    /// <summary>The raw JavaScript string of a primitive (used by <c>+</c> and <c>~</c> on strings).</summary>
    public static string Raw(object? v) => v switch
    {
        string s => s,
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => JsNumber(d),
        _ => throw new JinjaRuntimeError($"cannot turn a {TypeName(v)} into a string here"),
    };

    public static string ToJson(object? v, int? indent, bool ensureAscii, bool sortKeys, (string Item, string Key)? separators, int depth, bool undefinedAsNull = true)
    {
        string itemSep, keySep;
        if (separators is { } s) (itemSep, keySep) = s;
        else if (indent is > 0) (itemSep, keySep) = (",", ": ");
        else (itemSep, keySep) = (", ", ": ");

        switch (v)
        {
            case null: return "null";
            case JUndefined: return undefinedAsNull ? "null" : "undefined";
            case long l: return l.ToString(CultureInfo.InvariantCulture);
            case double d: return double.IsFinite(d) ? JsNumber(d) : "null";
            case bool b: return b ? "true" : "false";
            case string str: return JsonString(str, ensureAscii);
            case JList list:
            {
                var pad = indent is > 0 ? new string(' ', indent.Value) : "";
                var basePadding = "\n" + string.Concat(Enumerable.Repeat(pad, depth));
                var childPadding = basePadding + pad;
                var core = list.Select(x => ToJson(x, indent, ensureAscii, sortKeys, separators, depth + 1, undefinedAsNull)).ToList();
                return indent is > 0 && core.Count > 0
                    ? "[" + childPadding + string.Join(itemSep + childPadding, core) + basePadding + "]"
                    : "[" + string.Join(itemSep, core) + "]";
            }
            case JDict or JNamespace:
            {
                var items = v is JDict d ? d.Items : ((JNamespace)v).Items;
                IEnumerable<KeyValuePair<string, object?>> entries = items;
                if (sortKeys) entries = entries.OrderBy(e => e.Key, StringComparer.Ordinal);
                var pad = indent is > 0 ? new string(' ', indent.Value) : "";
                var basePadding = "\n" + string.Concat(Enumerable.Repeat(pad, depth));
                var childPadding = basePadding + pad;
                var core = entries.Select(e =>
                {
                    var entry = JsonString(e.Key, ensureAscii) + keySep + ToJson(e.Value, indent, ensureAscii, sortKeys, separators, depth + 1, undefinedAsNull);
                    return indent is > 0 ? childPadding + entry : entry;
                }).ToList();
                return indent is > 0 && core.Count > 0 ? "{" + string.Join(itemSep, core) + basePadding + "}" : "{" + string.Join(itemSep, core) + "}";
            }
            default:
                throw new JinjaRuntimeError($"cannot convert a {TypeName(v)} to JSON");
        }
    }

    /// <summary>A string as JavaScript's <c>JSON.stringify</c> writes it, optionally with non-ASCII escaped.</summary>
    public static string JsonString(string s, bool ensureAscii)
    {
        var sb = new StringBuilder(s.Length + 2);
        sb.Append('"');
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else if (char.IsHighSurrogate(c) && (i + 1 >= s.Length || !char.IsLowSurrogate(s[i + 1])))
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else if (char.IsLowSurrogate(c) && (i == 0 || !char.IsHighSurrogate(s[i - 1])))
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else if (ensureAscii && c >= 0x7f) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        return sb.Append('"').ToString();
    }
}
