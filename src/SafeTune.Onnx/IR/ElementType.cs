namespace SafeTune.Onnx;

/// <summary>ONNX tensor element types; the numeric values are those of <c>TensorProto.DataType</c>.</summary>
public enum ElementType
{
    /// <summary>Not set or not known.</summary>
    Undefined = 0,
    /// <summary>32-bit IEEE float.</summary>
    Float = 1,
    /// <summary>Unsigned 8-bit integer.</summary>
    UInt8 = 2,
    /// <summary>Signed 8-bit integer.</summary>
    Int8 = 3,
    /// <summary>Unsigned 16-bit integer.</summary>
    UInt16 = 4,
    /// <summary>Signed 16-bit integer.</summary>
    Int16 = 5,
    /// <summary>Signed 32-bit integer.</summary>
    Int32 = 6,
    /// <summary>Signed 64-bit integer.</summary>
    Int64 = 7,
    /// <summary>UTF-8 string.</summary>
    String = 8,
    /// <summary>Boolean.</summary>
    Bool = 9,
    /// <summary>16-bit IEEE float.</summary>
    Float16 = 10,
    /// <summary>64-bit IEEE float.</summary>
    Double = 11,
    /// <summary>Unsigned 32-bit integer.</summary>
    UInt32 = 12,
    /// <summary>Unsigned 64-bit integer.</summary>
    UInt64 = 13,
    /// <summary>Complex of two floats.</summary>
    Complex64 = 14,
    /// <summary>Complex of two doubles.</summary>
    Complex128 = 15,
    /// <summary>Brain float 16.</summary>
    BFloat16 = 16,
    /// <summary>8-bit float E4M3FN.</summary>
    Float8E4M3FN = 17,
    /// <summary>8-bit float E4M3FNUZ.</summary>
    Float8E4M3FNUZ = 18,
    /// <summary>8-bit float E5M2.</summary>
    Float8E5M2 = 19,
    /// <summary>8-bit float E5M2FNUZ.</summary>
    Float8E5M2FNUZ = 20,
    /// <summary>Unsigned 4-bit integer, packed two per byte.</summary>
    UInt4 = 21,
    /// <summary>Signed 4-bit integer, packed two per byte.</summary>
    Int4 = 22,
}

/// <summary>Facts about <see cref="ElementType"/> values.</summary>
public static class ElementTypes
{
    /// <summary>True for the floating-point types a gradient can flow through.</summary>
    public static bool IsFloatingPoint(this ElementType t) => t is ElementType.Float or ElementType.Double
        or ElementType.Float16 or ElementType.BFloat16;

    /// <summary>True for signed or unsigned integer types (not bool).</summary>
    public static bool IsInteger(this ElementType t) => t is ElementType.Int8 or ElementType.Int16 or ElementType.Int32
        or ElementType.Int64 or ElementType.UInt8 or ElementType.UInt16 or ElementType.UInt32 or ElementType.UInt64;

    /// <summary>Bytes per element, or 0 for types without a fixed byte size (string, 4-bit types).</summary>
    public static int ByteSize(this ElementType t) => t switch
    {
        ElementType.Float or ElementType.Int32 or ElementType.UInt32 => 4,
        ElementType.Double or ElementType.Int64 or ElementType.UInt64 or ElementType.Complex64 => 8,
        ElementType.Complex128 => 16,
        ElementType.Float16 or ElementType.BFloat16 or ElementType.Int16 or ElementType.UInt16 => 2,
        ElementType.Int8 or ElementType.UInt8 or ElementType.Bool or ElementType.Float8E4M3FN or ElementType.Float8E4M3FNUZ
            or ElementType.Float8E5M2 or ElementType.Float8E5M2FNUZ => 1,
        _ => 0,
    };

    /// <summary>Bytes needed for <paramref name="count"/> elements of this type (4-bit types are packed).</summary>
    public static long StorageBytes(this ElementType t, long count) => t switch
    {
        ElementType.Int4 or ElementType.UInt4 => (count + 1) / 2,
        _ => count * t.ByteSize(),
    };

    /// <summary>
    /// The element count of a tensor with <paramref name="dims"/>, computed with overflow checks; throws
    /// <see cref="OnnxFormatException"/> naming <paramref name="tensorName"/> for a negative dim or a count past 2^63.
    /// </summary>
    public static long CheckedElementCount(IReadOnlyList<long> dims, string tensorName)
    {
        long count = 1;
        foreach (var d in dims)
        {
            if (d < 0) throw new OnnxFormatException($"tensor '{tensorName}': negative dim in shape [{string.Join(", ", dims)}].");
            try { count = checked(count * d); }
            catch (OverflowException) { throw new OnnxFormatException($"tensor '{tensorName}': shape [{string.Join(", ", dims)}] has more elements than fit in 64 bits."); }
        }
        return count;
    }

    /// <summary>Bytes needed for a tensor of this type with <paramref name="dims"/>, with the overflow checks of <see cref="CheckedElementCount"/>.</summary>
    public static long CheckedStorageBytes(this ElementType t, IReadOnlyList<long> dims, string tensorName)
    {
        long count = CheckedElementCount(dims, tensorName);
        try { return t is ElementType.Int4 or ElementType.UInt4 ? count / 2 + count % 2 : checked(count * t.ByteSize()); }
        catch (OverflowException) { throw new OnnxFormatException($"tensor '{tensorName}': {t.OnnxName()} [{string.Join(", ", dims)}] needs more bytes than fit in 64 bits."); }
    }

    /// <summary>The lower-case name used in ONNX text (float, int64, ...).</summary>
    public static string OnnxName(this ElementType t) => t switch
    {
        ElementType.Float => "float",
        ElementType.Double => "double",
        ElementType.Float16 => "float16",
        ElementType.BFloat16 => "bfloat16",
        ElementType.Int8 => "int8",
        ElementType.Int16 => "int16",
        ElementType.Int32 => "int32",
        ElementType.Int64 => "int64",
        ElementType.UInt8 => "uint8",
        ElementType.UInt16 => "uint16",
        ElementType.UInt32 => "uint32",
        ElementType.UInt64 => "uint64",
        ElementType.Bool => "bool",
        ElementType.String => "string",
        ElementType.Complex64 => "complex64",
        ElementType.Complex128 => "complex128",
        ElementType.Float8E4M3FN => "float8e4m3fn",
        ElementType.Float8E4M3FNUZ => "float8e4m3fnuz",
        ElementType.Float8E5M2 => "float8e5m2",
        ElementType.Float8E5M2FNUZ => "float8e5m2fnuz",
        ElementType.UInt4 => "uint4",
        ElementType.Int4 => "int4",
        _ => "undefined",
    };

    /// <summary>The element type for a CLR type.</summary>
    public static ElementType Of<T>() => typeof(T) switch
    {
        var t when t == typeof(float) => ElementType.Float,
        var t when t == typeof(double) => ElementType.Double,
        var t when t == typeof(Half) => ElementType.Float16,
        var t when t == typeof(long) => ElementType.Int64,
        var t when t == typeof(int) => ElementType.Int32,
        var t when t == typeof(short) => ElementType.Int16,
        var t when t == typeof(sbyte) => ElementType.Int8,
        var t when t == typeof(byte) => ElementType.UInt8,
        var t when t == typeof(ushort) => ElementType.UInt16,
        var t when t == typeof(uint) => ElementType.UInt32,
        var t when t == typeof(ulong) => ElementType.UInt64,
        var t when t == typeof(bool) => ElementType.Bool,
        _ => throw new UserInputException($"No ONNX element type for {typeof(T).Name}."),
    };
}
