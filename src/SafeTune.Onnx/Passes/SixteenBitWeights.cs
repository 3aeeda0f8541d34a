using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace SafeTune.Onnx.Passes;

/// <summary>
/// Stores frozen float32 weights in 16 bits (float16 or bfloat16) and reads them through a <c>Cast</c> to float32, so a
/// graph holds half the bytes for them while every op still computes in float32.
/// <para>
/// Each weight keeps its name: the initializer (or, for a session whose weights are bound from outside, the graph input)
/// becomes 16-bit, and one <c>Cast</c> node gives its float32 value to the nodes that read it. A <c>Gather</c> that reads
/// a weight as its table (an embedding) gathers the 16-bit rows and casts those instead, so the whole table is never
/// widened for a lookup.
/// </para>
/// </summary>
public static class SixteenBitWeights
{
    /// <summary>The element types weights can be stored in: float16 and bfloat16 (and float32, which leaves them alone).</summary>
    public static bool IsStorageType(ElementType type) => type is ElementType.Float or ElementType.Float16 or ElementType.BFloat16;

    /// <summary>
    /// Stores the float32 initializers named in <paramref name="names"/> as <paramref name="storage"/>. With
    /// <paramref name="asInputs"/> they become 16-bit graph inputs without data (their values are bound when the graph
    /// runs); otherwise 16-bit initializers holding the rounded values. Names that are not float32 initializers are
    /// skipped. Returns the names converted.
    /// </summary>
    public static IReadOnlyList<string> Apply(Graph graph, IEnumerable<string> names, ElementType storage, bool asInputs = false)
    {
        ArgumentNullException.ThrowIfNull(graph);
        if (storage is not (ElementType.Float16 or ElementType.BFloat16))
            throw new UserInputException($"weights can be stored as float16 or bfloat16, not {storage.OnnxName()}.");
        var done = new List<string>();
        foreach (var name in names)
        {
            if (graph.FindInitializer(name) is not { ElementType: ElementType.Float } weight) continue;
            var uses = weight.Uses.ToArray();
            var widened = graph.AddNode("Cast", [weight], [name + "_float"], [Attribute.Of("to", (long)ElementType.Float)],
                graph.Names.NewNodeName(name + "_float"));
            var wide = widened.Outputs[0];
            wide.ElementType = ElementType.Float;
            wide.Shape = weight.Shape;
            foreach (var use in uses)
            {
                if (use.Node.OpType == "Gather" && use.Node.Domain.Length == 0 && use.InputIndex == 0) GatherNarrow(graph, use.Node, storage);
                else use.Node.SetInput(use.InputIndex, wide);
            }
            if (weight.IsGraphOutput) graph.ReplaceAllUses(weight, wide);
            if (asInputs)
            {
                graph.PromoteInitializerToInput(weight);
                weight.ElementType = storage;
            }
            else
            {
                var wide32 = weight.Initializer!;
                graph.SetInitializer(weight, Narrow(wide32, storage));
                // Mapped float32 pages were read once to round them; the 16-bit copy is what runs.
                wide32.ReleaseMappedPages();
            }
            if (wide.Uses.Count == 0 && !wide.IsGraphOutput) graph.RemoveNode(widened);
            done.Add(name);
        }
        if (done.Count > 0) graph.SortTopologically();
        return done;
    }

    /// <summary>A <c>Gather</c> from a stored table: the 16-bit rows are gathered and then cast to float32.</summary>
    private static void GatherNarrow(Graph graph, Node gather, ElementType storage)
    {
        // The float32 rows keep the gathered value's name (passes that name values, such as activation checkpoints, see
        // the same float32 tensor); the 16-bit rows get a new one.
        var rows = gather.Outputs[0];
        var uses = rows.Uses.ToArray();
        string name = rows.Name;
        graph.RenameValueUnique(rows, name + "_" + storage.OnnxName());
        var cast = graph.AddNode("Cast", [rows], [name], [Attribute.Of("to", (long)ElementType.Float)],
            graph.Names.NewNodeName(gather.Name.Length > 0 ? gather.Name + "_float" : name + "_float"), exactOutputNames: true);
        var wide = cast.Outputs[0];
        wide.ElementType = ElementType.Float;
        wide.Shape = rows.Shape;
        foreach (var use in uses) use.Node.SetInput(use.InputIndex, wide);
        if (rows.IsGraphOutput)
            for (int i = 0; i < graph.Outputs.Count; i++)
                if (ReferenceEquals(graph.Outputs[i], rows)) graph.SetOutput(i, wide);
        rows.ElementType = storage;
    }

    /// <summary>A float32 tensor rounded to <paramref name="storage"/> (round to nearest even; NaN stays NaN).</summary>
    public static TensorData Narrow(TensorData data, ElementType storage)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.ElementType != ElementType.Float) throw new UserInputException($"tensor '{data.Name}' is {data.ElementType.OnnxName()}, not float32.");
        var source = data.AsSpan<float>();
        var bytes = new byte[checked(source.Length * 2L)];
        var target = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
        if (storage == ElementType.Float16)
            System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(source, MemoryMarshal.Cast<ushort, Half>(target));
        else if (storage == ElementType.BFloat16)
            for (int i = 0; i < source.Length; i++) target[i] = ToBFloat16(source[i]);
        else throw new UserInputException($"weights can be stored as float16 or bfloat16, not {storage.OnnxName()}.");
        if (!BitConverter.IsLittleEndian)
            for (int i = 0; i < target.Length; i++) target[i] = BinaryPrimitives.ReverseEndianness(target[i]);
        return new TensorData(data.Name, storage, data.Dims, bytes);
    }

    /// <summary>The bfloat16 nearest to <paramref name="value"/> (ties to even), as its bits.</summary>
    public static ushort ToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x40);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    /// <summary>The float32 value of bfloat16 bits.</summary>
    public static float FromBFloat16(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);
}
