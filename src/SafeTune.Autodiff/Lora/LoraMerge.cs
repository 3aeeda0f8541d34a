namespace SafeTune.Autodiff.Lora;

/// <summary>
/// Folds LoRA adapters back into their frozen weights and removes them, giving back the original graph: the same nodes
/// (names, op types, inputs, outputs, order), the same initializers in the same order, and the adapted weights changed to
/// <c>W + (alpha / r) · (B·A)ᵀ</c> for W stored [in, out], or <c>W + (alpha / r) · B·A</c> for W stored [out, in].
/// The update is computed in float64 and stored as float32.
/// </summary>
public static class LoraMerge
{
    /// <summary>
    /// Merges <paramref name="adapters"/> into <paramref name="loraModel"/> (changed in place and returned). The A and B
    /// values come from <paramref name="trainedValues"/> by name when given there (e.g. the parameters after training),
    /// else from the model's initializers. Every adapter is checked before anything changes; a graph that is not the one
    /// <see cref="LoraPass"/> made throws <see cref="OnnxFormatException"/> naming the adapter.
    /// </summary>
    public static Model Merge(Model loraModel, IReadOnlyList<LoraAdapter> adapters, IReadOnlyDictionary<string, TensorData>? trainedValues = null)
    {
        ArgumentNullException.ThrowIfNull(loraModel);
        ArgumentNullException.ThrowIfNull(adapters);
        var g = loraModel.Graph;
        var duplicate = adapters.GroupBy(a => a.WeightName, StringComparer.Ordinal).FirstOrDefault(x => x.Count() > 1);
        if (duplicate is not null)
            throw new OnnxFormatException($"LoRA merge: weight '{duplicate.Key}' is listed by {duplicate.Count()} adapters.");

        var found = adapters.Select(a => Resolve(g, a)).ToList();
        var merged = found.Select(f => MergedWeight(f.Weight.Initializer!, Values(f.A, f.Adapter, trainedValues), Values(f.B, f.Adapter, trainedValues),
            f.Scale, f.Adapter.Transposed, f.Adapter)).ToList();

        for (int i = 0; i < found.Count; i++)
        {
            var f = found[i];
            g.SetInitializer(f.Weight, merged[i]);
            g.ReplaceAllUses(f.Adapted, f.Base);
            foreach (var n in f.Nodes) g.RemoveNode(n);
            g.RemoveInitializer(f.A);
            g.RemoveInitializer(f.B);
            g.RenameValue(f.Base, f.Adapter.OutputName);
        }
        return loraModel;
    }

    /// <summary>
    /// The merged weight <c>W + scale · (B·A)ᵀ</c> (W [in, out]) or <c>W + scale · B·A</c> (W [out, in] when
    /// <paramref name="transposed"/>), computed in float64 and stored as float32 under W's name.
    /// A is [r, in] and B is [out, r]; any floating-point element type is accepted for A and B, W must be float32.
    /// </summary>
    public static TensorData MergedWeight(TensorData weight, TensorData a, TensorData b, double scale, bool transposed) =>
        MergedWeight(weight, a, b, scale, transposed, null);

    private static TensorData MergedWeight(TensorData weight, TensorData a, TensorData b, double scale, bool transposed, LoraAdapter? adapter)
    {
        string at = adapter is null ? "LoRA merge" : $"LoRA merge: adapter of '{adapter.NodeName}'";
        if (weight.ElementType != ElementType.Float || weight.Dims.Length != 2)
            throw new OnnxFormatException($"{at}: weight '{weight.Name}' is {weight.ElementType.OnnxName()} {weight.Shape}, not a float matrix.");
        int inDim = (int)weight.Dims[transposed ? 1 : 0], outDim = (int)weight.Dims[transposed ? 0 : 1];
        if (!a.ElementType.IsFloatingPoint() || a.Dims.Length != 2 || a.Dims[1] != inDim || a.Dims[0] < 1)
            throw new OnnxFormatException($"{at}: '{a.Name}' is {a.ElementType.OnnxName()} {a.Shape}; expected a float [r, {inDim}].");
        int r = (int)a.Dims[0];
        if (!b.ElementType.IsFloatingPoint() || !b.Dims.SequenceEqual([outDim, (long)r]))
            throw new OnnxFormatException($"{at}: '{b.Name}' is {b.ElementType.OnnxName()} {b.Shape}; expected a float [{outDim}, {r}].");

        // Deferred: the merged values are computed when the model is written (or read), one weight at a time, so merging
        // the adapters of a large model never holds a second copy of all its projections.
        return TensorData.FromSource(weight.Name, ElementType.Float, [.. weight.Dims], new MergedSource(weight, a, b, scale, transposed, inDim, outDim, r));
    }

    private sealed class MergedSource(TensorData weight, TensorData a, TensorData b, double scale, bool transposed, int inDim, int outDim, int r)
        : ITensorSource
    {
        public long ByteCount => weight.ByteCount;

        public void WriteTo(Stream destination)
        {
            var w = weight.AsSpan<float>();
            var av = a.ToDoubles();
            var bv = b.ToDoubles();
            var result = w.ToArray();
            Parallel.For(0, outDim, o =>
            {
                var delta = new double[inDim];
                for (int k = 0; k < r; k++)
                {
                    double bk = bv[(long)o * r + k];
                    if (bk == 0) continue;
                    long row = (long)k * inDim;
                    for (int i = 0; i < inDim; i++) delta[i] += bk * av[row + i];
                }
                for (int i = 0; i < inDim; i++)
                {
                    long idx = transposed ? (long)o * inDim + i : (long)i * outDim + o;
                    result[idx] = (float)(result[idx] + scale * delta[i]);
                }
            });
            destination.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(result.AsSpan()));
        }
    }

    private static TensorData Values(Value v, LoraAdapter adapter, IReadOnlyDictionary<string, TensorData>? trained)
    {
        if (trained is not null && trained.TryGetValue(v.Name, out var t)) return t;
        return v.Initializer ?? throw new OnnxFormatException(
            $"LoRA merge: adapter of '{adapter.NodeName}': '{v.Name}' is not an initializer; pass its value in the trained values.");
    }

    private sealed record Found(LoraAdapter Adapter, Value Adapted, Value Base, Value Weight, Value A, Value B, double Scale, Node[] Nodes);

    /// <summary>Finds the nodes <see cref="LoraPass"/> added for one adapter, checking the structure it made.</summary>
    private static Found Resolve(Graph g, LoraAdapter ad)
    {
        OnnxFormatException Fail(string why) => new($"LoRA merge: adapter of '{ad.NodeName}' (weight '{ad.WeightName}'): {why}.");
        Node Made(Value? v, string op, string what) =>
            v?.Producer is { Domain: "" } p && p.OpType == op ? p : throw Fail($"{what} is not the output of a {op} node");
        void Private(Value v, string what)
        {
            if (v.Uses.Count != 1 || v.IsGraphOutput) throw Fail($"{what} '{v.Name}' is read by other nodes too");
        }

        var adapted = g.FindValue(ad.OutputName) ?? throw Fail($"the graph has no value '{ad.OutputName}'");
        var add = Made(adapted, "Add", $"'{ad.OutputName}'");
        var baseValue = add.Input(0) ?? throw Fail("the adapter's Add has no first input");
        var matmul = Made(baseValue, "MatMul", "the adapter's base value");
        if (LoraPass.LabelOf(matmul, ad.OutputName) != ad.NodeName)
            throw Fail($"the MatMul under the adapter is '{matmul.Name}', not '{ad.NodeName}'");
        var projection = LoraPass.Inspect(matmul);
        if (projection is null || projection.Weight.Name != ad.WeightName || (projection.Transpose is not null) != ad.Transposed)
            throw Fail("the MatMul no longer reads the adapted weight");
        Private(baseValue, "the MatMul's output");

        var scaled = add.Input(1)!;
        var mul = Made(scaled, "Mul", "the scaled update");
        var scaleNode = Made(mul.Input(1), "Constant", "the scale");
        var scale = mul.Input(1)!.ConstantData is { ElementCount: 1 } s ? s.ToDoubles()[0] : throw Fail("the scale is not a scalar constant");
        var up = Made(mul.Input(0), "MatMul", "the update");
        var transposeB = Made(up.Input(1), "Transpose", "Bᵀ");
        var down = Made(up.Input(0), "MatMul", "x·Aᵀ");
        var transposeA = Made(down.Input(1), "Transpose", "Aᵀ");
        if (!ReferenceEquals(down.Input(0), matmul.Input(0)))
            throw Fail("the adapter does not read the projection's input");
        var a = transposeA.Input(0) is { } av && av.Name == ad.AName ? av : throw Fail($"Aᵀ is not the transpose of '{ad.AName}'");
        var b = transposeB.Input(0) is { } bv && bv.Name == ad.BName ? bv : throw Fail($"Bᵀ is not the transpose of '{ad.BName}'");
        foreach (var (v, what) in new[] { (scaled, "the scaled update"), (mul.Input(1)!, "the scale"), (mul.Input(0)!, "the update"),
            (up.Input(1)!, "Bᵀ"), (up.Input(0)!, "x·Aᵀ"), (down.Input(1)!, "Aᵀ"), (a, "A"), (b, "B") })
            Private(v, what);
        return new Found(ad, adapted, baseValue, projection.Weight, a, b, scale, [add, mul, scaleNode, up, transposeB, down, transposeA]);
    }
}
