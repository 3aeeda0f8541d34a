namespace SafeTune.Onnx.Shapes;

/// <summary>
/// Arithmetic on dims that may be symbolic. A symbolic dim is a product of named factors with a known coefficient,
/// written <c>batch*sequence</c> or <c>8*sequence</c>; sizes are never negative.
/// </summary>
public static class SymbolicDim
{
    private readonly record struct Factors(long Coefficient, string[] Symbols)
    {
        public Dim ToDim() => Symbols.Length == 0 ? Dim.Of(Coefficient)
            : Dim.Symbol(string.Join('*', (Coefficient == 1 ? [] : new[] { Coefficient.ToString(System.Globalization.CultureInfo.InvariantCulture) }).Concat(Symbols)));
    }

    private static Factors? Factor(Dim d)
    {
        if (d.Value is { } v) return new Factors(v, []);
        if (d.Param is not { } p) return null;
        long c = 1;
        var syms = new List<string>();
        foreach (var part in p.Split('*'))
        {
            if (long.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n)) c *= n;
            else syms.Add(part);
        }
        syms.Sort(StringComparer.Ordinal);
        return new Factors(c, [.. syms]);
    }

    /// <summary>a * b.</summary>
    public static Dim Multiply(Dim a, Dim b)
    {
        if (a.Value == 0 || b.Value == 0) return Dim.Of(0);
        if (Factor(a) is not { } x || Factor(b) is not { } y) return Dim.Unknown;
        var syms = x.Symbols.Concat(y.Symbols).ToList();
        syms.Sort(StringComparer.Ordinal);
        return new Factors(x.Coefficient * y.Coefficient, [.. syms]).ToDim();
    }

    /// <summary>The product of several dims.</summary>
    public static Dim Product(IEnumerable<Dim> dims) => dims.Aggregate(Dim.Of(1), Multiply);

    /// <summary>a / b when it divides exactly (symbol by symbol), else unknown.</summary>
    public static Dim Divide(Dim a, Dim b)
    {
        if (Factor(a) is not { } x || Factor(b) is not { } y || y.Coefficient == 0) return Dim.Unknown;
        if (x.Coefficient % y.Coefficient != 0) return Dim.Unknown;
        var rest = x.Symbols.ToList();
        foreach (var s in y.Symbols)
            if (!rest.Remove(s)) return Dim.Unknown;
        return new Factors(x.Coefficient / y.Coefficient, [.. rest]).ToDim();
    }

    /// <summary>a + b for known sizes, a itself when b is 0; else unknown.</summary>
    public static Dim Add(Dim a, Dim b) =>
        a.Value is { } x && b.Value is { } y ? Dim.Of(x + y)
        : b.Value == 0 ? a : a.Value == 0 ? b : Dim.Unknown;

    /// <summary>a - b for known sizes, a itself when b is 0; else unknown.</summary>
    public static Dim Subtract(Dim a, Dim b) =>
        a.Value is { } x && b.Value is { } y ? Dim.Of(x - y) : b.Value == 0 ? a : a.SameAs(b) ? Dim.Of(0) : Dim.Unknown;

    /// <summary>Broadcasts two dims (numpy rules); unknown when they cannot be reconciled statically.</summary>
    public static Dim Broadcast(Dim a, Dim b)
    {
        if (a.Value == 1) return b;
        if (b.Value == 1) return a;
        if (a.SameAs(b)) return a;
        if (a.Value is not null && b.IsUnknown) return a;
        if (b.Value is not null && a.IsUnknown) return b;
        if (a.Value is not null && b.Param is not null) return a;
        if (b.Value is not null && a.Param is not null) return b;
        return a.IsUnknown ? b : a;
    }
}
