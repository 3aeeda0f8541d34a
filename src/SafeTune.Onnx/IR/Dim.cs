using System.Collections.Immutable;

namespace SafeTune.Onnx;

/// <summary>One dimension of a tensor shape: a known size, a named symbol (e.g. <c>batch</c>), or unknown.</summary>
public readonly record struct Dim
{
    /// <summary>The known size, or null.</summary>
    public long? Value { get; }

    /// <summary>The symbol, or null. Products of symbols are written with '*', e.g. <c>batch*sequence</c>.</summary>
    public string? Param { get; }

    private Dim(long? value, string? param) { Value = value; Param = param; }

    /// <summary>An unknown dimension.</summary>
    public static Dim Unknown => default;

    /// <summary>True when neither size nor symbol is known.</summary>
    public bool IsUnknown => Value is null && Param is null;

    /// <summary>A known size.</summary>
    public static Dim Of(long value) => new(value, null);

    /// <summary>A symbolic size.</summary>
    public static Dim Symbol(string param) => string.IsNullOrEmpty(param) ? Unknown : new(null, param);

    /// <summary>Implicit conversion from a known size.</summary>
    public static implicit operator Dim(long value) => Of(value);

    /// <summary>True when both dims are the same known size or the same symbol.</summary>
    public bool SameAs(Dim other) => (Value is { } a && other.Value is { } b && a == b)
        || (Param is { } p && other.Param is { } q && p == q);

    /// <inheritdoc/>
    public override string ToString() => Value?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? Param ?? "?";
}

/// <summary>A tensor shape with a known rank. A value whose rank is unknown has no <see cref="Shape"/> at all.</summary>
public sealed class Shape : IEquatable<Shape>
{
    /// <summary>The dimensions, outermost first.</summary>
    public ImmutableArray<Dim> Dims { get; }

    /// <summary>Creates a shape.</summary>
    public Shape(IEnumerable<Dim> dims) => Dims = [.. dims];

    /// <summary>Creates a shape from known sizes.</summary>
    public static Shape Of(params long[] dims) => new(dims.Select(Dim.Of));

    /// <summary>A scalar (rank 0).</summary>
    public static Shape Scalar { get; } = new([]);

    /// <summary>The number of dimensions (0 for a scalar).</summary>
    public int Rank => Dims.Length;

    /// <summary>The i-th dim; negative indices count from the end.</summary>
    public Dim this[int i] => Dims[i < 0 ? i + Rank : i];

    /// <summary>True when every dim is a known size.</summary>
    public bool IsFullyKnown => Dims.All(d => d.Value is not null);

    /// <summary>The element count when every dim is known.</summary>
    public long? ElementCount => IsFullyKnown ? Dims.Aggregate(1L, (p, d) => p * d.Value!.Value) : null;

    /// <summary>The known sizes, with -1 for dims that are not known sizes.</summary>
    public long[] ToArray() => [.. Dims.Select(d => d.Value ?? -1)];

    /// <inheritdoc/>
    public bool Equals(Shape? other) => other is not null && Dims.SequenceEqual(other.Dims);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as Shape);

    /// <inheritdoc/>
    public override int GetHashCode() => Dims.Aggregate(Rank, (h, d) => HashCode.Combine(h, d));

    /// <inheritdoc/>
    public override string ToString() => "[" + string.Join(", ", Dims) + "]";
}
