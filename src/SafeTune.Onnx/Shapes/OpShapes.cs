namespace SafeTune.Onnx.Shapes;

/// <summary>Per-operator type and shape rules for the ops found in exported transformers.</summary>
internal static class OpShapes
{
    private static readonly HashSet<string> SameAsFirst =
    [
        "Identity", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Erf", "Tanh", "Sigmoid", "Relu", "Abs", "Cos", "Sin",
        "Softmax", "LogSoftmax", "Floor", "Ceil", "Round", "Gelu", "Elu", "LeakyRelu", "HardSigmoid", "Softplus", "Softsign",
        "Clip", "Sign", "Trilu", "CumSum", "Not", "Selu", "Celu", "Mish", "HardSwish", "ScatterElements", "ScatterND",
        "Hardmax", "LpNormalization", "InstanceNormalization", "BatchNormalization", "QuickGelu", "FastGelu", "BiasGelu",
        "SkipLayerNormalization", "SkipSimplifiedLayerNormalization", "SimplifiedLayerNormalization", "RotaryEmbedding",
    ];

    private static readonly HashSet<string> Broadcasting = ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mod", "Sum", "Mean", "PRelu", "BitShift"];
    private static readonly HashSet<string> Comparison = ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor"];

    public static InferredOutput[] Infer(Node n, InferenceContext ctx)
    {
        if (n.Domain == "ai.safetune" && n.OpType == "ResponseHeadLoss")
        {
            // SafeTune's fused head and response loss (lowered to a Loop before a session is made): the loss, the
            // gradient rows [N, d] like the hidden rows, and per-token terms [N].
            var hidden = n.Input(0);
            var rows = new Shape([hidden?.Shape is { Rank: 2 } hs ? hs[0] : Dim.Unknown]);
            return [new(ElementType.Float, Shape.Scalar), new(ElementType.Float, hidden?.Shape), .. n.Outputs.Skip(2).Select(_ => new InferredOutput(ElementType.Float, rows))];
        }
        if (n.Domain is not ("" or "ai.onnx" or "com.microsoft")) return [];
        var x = n.Input(0);
        switch (n.OpType)
        {
            case var op when SameAsFirst.Contains(op):
                if (op == "Identity" && ctx.KnownOf(x) is { } same) ctx.Known[n.Outputs[0]] = same;
                return x is null ? [] : [new(x.ElementType, x.Shape)];
            case "Dropout":
                return x is null ? [] : [new(x.ElementType, x.Shape), new(ElementType.Bool, x.Shape)];
            case "IsNaN" or "IsInf":
                return [new(ElementType.Bool, x?.Shape)];
            case var op when Broadcasting.Contains(op):
                KnownElementwise(n, ctx);
                return [new(n.Inputs.FirstOrDefault(v => v is not null)?.ElementType ?? ElementType.Undefined, BroadcastAll(n.Inputs))];
            case var op when Comparison.Contains(op):
                KnownElementwise(n, ctx);
                return [new(ElementType.Bool, BroadcastAll(n.Inputs))];
            case "Where":
                KnownWhere(n, ctx);
                return [new(n.Input(1)?.ElementType ?? ElementType.Undefined, BroadcastAll(n.Inputs))];
            case "Cast":
            {
                var to = (ElementType)n.GetInt("to", 0);
                if (to.IsInteger() && ctx.KnownOf(x) is { } k) ctx.Known[n.Outputs[0]] = k;
                return [new(to, x?.Shape)];
            }
            case "CastLike":
                return [new(n.Input(1)?.ElementType ?? ElementType.Undefined, x?.Shape)];
            case "MatMul":
                return [new(x?.ElementType ?? ElementType.Undefined, MatMul(x?.Shape, n.Input(1)?.Shape))];
            case "Gemm":
                return [new(x?.ElementType ?? ElementType.Undefined, Gemm(n))];
            case "Shape":
                return ShapeOp(n, ctx);
            case "Size":
                if (x?.Shape is { } xs) ctx.Known[n.Outputs[0]] = [SymbolicDim.Product(xs.Dims)];
                return [new(ElementType.Int64, Shape.Scalar)];
            case "Constant":
                return ConstantOp(n, ctx);
            case "ConstantOfShape":
                return ConstantOfShape(n, ctx);
            case "Reshape":
                if (ctx.KnownOf(x) is { } flat) ctx.Known[n.Outputs[0]] = flat;
                return [new(x?.ElementType ?? ElementType.Undefined, Reshape(n, ctx))];
            case "Transpose":
                return [new(x?.ElementType ?? ElementType.Undefined, Transpose(n))];
            case "Unsqueeze":
                return Unsqueeze(n, ctx);
            case "Squeeze":
                return Squeeze(n, ctx);
            case "Concat":
                return Concat(n, ctx);
            case "Split":
                return Split(n, ctx);
            case "Slice":
                return Slice(n, ctx);
            case "Gather":
                return Gather(n, ctx);
            case "GatherElements":
                return [new(x?.ElementType ?? ElementType.Undefined, n.Input(1)?.Shape)];
            case "Expand":
                return [new(x?.ElementType ?? ElementType.Undefined, ctx.KnownOf(n.Input(1)) is { } t && x?.Shape is { } s ? Broadcast(s, new Shape(t)) : null)];
            case "Range":
                return Range(n, ctx);
            case "ReduceMean" or "ReduceSum" or "ReduceMax" or "ReduceMin" or "ReduceProd" or "ReduceL1" or "ReduceL2"
                or "ReduceLogSum" or "ReduceLogSumExp" or "ReduceSumSquare":
                return [new(x?.ElementType ?? ElementType.Undefined, Reduce(n, ctx))];
            case "ArgMax" or "ArgMin":
                return [new(ElementType.Int64, ReduceAxes(x?.Shape, [n.GetInt("axis", 0)], n.GetInt("keepdims", 1) != 0))];
            case "LayerNormalization":
                return LayerNorm(n);
            case "Flatten":
                return [new(x?.ElementType ?? ElementType.Undefined, Flatten(n))];
            case "Tile":
                return [new(x?.ElementType ?? ElementType.Undefined, Tile(n, ctx))];
            case "OneHot":
                return [new(n.Input(2)?.ElementType ?? ElementType.Undefined, OneHot(n, ctx))];
            case "NonZero":
                return [new(ElementType.Int64, x?.Shape is { } nz ? new Shape([Dim.Of(nz.Rank), Dim.Unknown]) : null)];
            case "Pad":
                // The padded sizes are known only when the pads are constants; the rank and the type always are.
                return [new(x?.ElementType ?? ElementType.Undefined, x?.Shape is { } ps ? new Shape(ps.Dims.Select(_ => Dim.Unknown)) : null)];
            default:
                return [];
        }
    }

    internal static Shape? BroadcastAll(IEnumerable<Value?> inputs)
    {
        Shape? result = null;
        foreach (var v in inputs)
        {
            if (v is null) continue;
            if (v.Shape is null) return null;
            result = result is null ? v.Shape : Broadcast(result, v.Shape);
        }
        return result;
    }

    internal static Shape Broadcast(Shape a, Shape b)
    {
        int rank = Math.Max(a.Rank, b.Rank);
        var dims = new Dim[rank];
        for (int i = 0; i < rank; i++)
        {
            int ia = a.Rank - rank + i, ib = b.Rank - rank + i;
            dims[i] = ia < 0 ? b.Dims[ib] : ib < 0 ? a.Dims[ia] : SymbolicDim.Broadcast(a.Dims[ia], b.Dims[ib]);
        }
        return new Shape(dims);
    }

    private static Shape? MatMul(Shape? a, Shape? b)
    {
        if (a is null || b is null || a.Rank == 0 || b.Rank == 0) return null;
        bool va = a.Rank == 1, vb = b.Rank == 1;
        var a2 = va ? new Shape([Dim.Of(1), a[0]]) : a;
        var b2 = vb ? new Shape([b[0], Dim.Of(1)]) : b;
        var batch = Broadcast(new Shape(a2.Dims.Take(a2.Rank - 2)), new Shape(b2.Dims.Take(b2.Rank - 2)));
        var dims = batch.Dims.ToList();
        if (!va) dims.Add(a2[-2]);
        if (!vb) dims.Add(b2[-1]);
        return new Shape(dims);
    }

    private static Shape? Gemm(Node n)
    {
        if (n.Input(0)?.Shape is not { Rank: 2 } a || n.Input(1)?.Shape is not { Rank: 2 } b) return null;
        var m = n.GetInt("transA", 0) != 0 ? a[1] : a[0];
        var k = n.GetInt("transB", 0) != 0 ? b[0] : b[1];
        return new Shape([m, k]);
    }

    private static InferredOutput[] ShapeOp(Node n, InferenceContext ctx)
    {
        if (n.Input(0)?.Shape is not { } s) return [new(ElementType.Int64, null)];
        int rank = s.Rank;
        long start = n.GetInt("start", 0), end = n.GetInt("end", rank);
        start = Math.Clamp(start < 0 ? start + rank : start, 0, rank);
        end = Math.Clamp(end < 0 ? end + rank : end, 0, rank);
        var dims = s.Dims.Skip((int)start).Take((int)Math.Max(0, end - start)).ToArray();
        ctx.Known[n.Outputs[0]] = dims;
        return [new(ElementType.Int64, Shape.Of(dims.Length))];
    }

    private static InferredOutput[] ConstantOp(Node n, InferenceContext ctx)
    {
        var t = n.Outputs[0].ConstantData;
        if (t is null) return [];
        if ((t.ElementType.IsInteger() || t.ElementType == ElementType.Bool) && t.ElementCount <= InferenceContext.MaxKnownElements)
            ctx.Known[n.Outputs[0]] = [.. t.ToInt64s().Select(Dim.Of)];
        return [new(t.ElementType, t.Shape)];
    }

    private static InferredOutput[] ConstantOfShape(Node n, InferenceContext ctx)
    {
        var type = n.Attributes.TryGetValue("value", out var a) && a.Tensor is { } t ? t.ElementType : ElementType.Float;
        var dims = ctx.KnownOf(n.Input(0));
        if (dims is null) return [new(type, n.Input(0)?.Shape is { Rank: 1 } r && r[0].Value is { } len ? new Shape(Enumerable.Repeat(Dim.Unknown, (int)len)) : null)];
        var shape = new Shape(dims);
        if (type.IsInteger() && shape.ElementCount is { } count && count <= InferenceContext.MaxKnownElements)
        {
            long fill = a?.Tensor is { } ft ? ft.ToInt64s()[0] : 0;
            ctx.Known[n.Outputs[0]] = [.. Enumerable.Repeat(Dim.Of(fill), (int)count)];
        }
        return [new(type, shape)];
    }

    private static Shape? Reshape(Node n, InferenceContext ctx)
    {
        var target = ctx.KnownOf(n.Input(1));
        if (target is null)
            return n.Input(1)?.Shape is { Rank: 1 } r && r[0].Value is { } len ? new Shape(Enumerable.Repeat(Dim.Unknown, (int)len)) : null;
        var input = n.Input(0)?.Shape;
        bool allowZero = n.GetInt("allowzero", 0) != 0;
        var dims = new Dim[target.Length];
        int inferIndex = -1;
        for (int i = 0; i < dims.Length; i++)
        {
            var d = target[i];
            if (d.Value == 0 && !allowZero) dims[i] = input is not null && i < input.Rank ? input[i] : Dim.Unknown;
            else if (d.Value == -1) { inferIndex = i; dims[i] = Dim.Unknown; }
            else dims[i] = d;
        }
        if (inferIndex >= 0 && input is not null)
        {
            var known = SymbolicDim.Product(dims.Where((_, i) => i != inferIndex));
            dims[inferIndex] = dims.Where((_, i) => i != inferIndex).Any(d => d.IsUnknown)
                ? Dim.Unknown
                : SymbolicDim.Divide(SymbolicDim.Product(input.Dims), known);
        }
        return new Shape(dims);
    }

    private static Shape? Transpose(Node n)
    {
        if (n.Input(0)?.Shape is not { } s) return null;
        var perm = n.GetInts("perm") ?? [.. Enumerable.Range(0, s.Rank).Reverse().Select(i => (long)i)];
        return new Shape(perm.Select(p => s[(int)p]));
    }

    private static long[]? AxesOf(Node n, InferenceContext ctx, int inputIndex) =>
        n.GetInts("axes") is { } a ? [.. a] : ctx.IntsOf(n.Input(inputIndex));

    private static InferredOutput[] Unsqueeze(Node n, InferenceContext ctx)
    {
        var x = n.Input(0);
        var axes = AxesOf(n, ctx, 1);
        if (x?.Shape is not { } s || axes is null) return [new(x?.ElementType ?? ElementType.Undefined, null)];
        int rank = s.Rank + axes.Length;
        var norm = axes.Select(a => a < 0 ? a + rank : a).ToHashSet();
        var dims = new List<Dim>();
        int j = 0;
        for (int i = 0; i < rank; i++) dims.Add(norm.Contains(i) ? Dim.Of(1) : s.Dims[j++]);
        if (ctx.KnownOf(x) is { } k) ctx.Known[n.Outputs[0]] = k;
        return [new(x.ElementType, new Shape(dims))];
    }

    private static InferredOutput[] Squeeze(Node n, InferenceContext ctx)
    {
        var x = n.Input(0);
        if (x?.Shape is not { } s) return [new(x?.ElementType ?? ElementType.Undefined, null)];
        var axes = AxesOf(n, ctx, 1);
        if (axes is null && n.Input(1) is not null) return [new(x.ElementType, null)];
        var drop = axes is null
            ? [.. Enumerable.Range(0, s.Rank).Where(i => s[i].Value == 1)]
            : axes.Select(a => (int)(a < 0 ? a + s.Rank : a)).ToHashSet();
        if (ctx.KnownOf(x) is { } k) ctx.Known[n.Outputs[0]] = k;
        return [new(x.ElementType, new Shape(s.Dims.Where((_, i) => !drop.Contains(i))))];
    }

    private static InferredOutput[] Concat(Node n, InferenceContext ctx)
    {
        var inputs = n.Inputs.OfType<Value>().ToList();
        var type = inputs.FirstOrDefault()?.ElementType ?? ElementType.Undefined;
        if (inputs.Count == 0 || inputs.Any(v => v.Shape is null)) return [new(type, null)];
        var first = inputs[0].Shape!;
        long axis = n.GetInt("axis", 0);
        int ax = (int)(axis < 0 ? axis + first.Rank : axis);
        var dims = first.Dims.ToArray();
        dims[ax] = inputs.Skip(1).Aggregate(first[ax], (acc, v) => SymbolicDim.Add(acc, v.Shape![ax]));
        for (int i = 0; i < dims.Length; i++)
            if (i != ax && dims[i].IsUnknown) dims[i] = inputs.Select(v => v.Shape![i]).FirstOrDefault(d => !d.IsUnknown);
        if (first.Rank == 1 && inputs.All(v => ctx.KnownOf(v) is not null))
            ctx.Known[n.Outputs[0]] = [.. inputs.SelectMany(v => ctx.KnownOf(v)!)];
        return [new(type, new Shape(dims))];
    }

    private static InferredOutput[] Split(Node n, InferenceContext ctx)
    {
        var x = n.Input(0);
        var type = x?.ElementType ?? ElementType.Undefined;
        int count = n.Outputs.Count;
        if (x?.Shape is not { } s) return [.. Enumerable.Repeat(new InferredOutput(type, null), count)];
        long axis = n.GetInt("axis", 0);
        int ax = (int)(axis < 0 ? axis + s.Rank : axis);
        var sizes = n.GetInts("split")?.ToArray() ?? ctx.IntsOf(n.Input(1));
        var result = new InferredOutput[count];
        for (int i = 0; i < count; i++)
        {
            var dims = s.Dims.ToArray();
            dims[ax] = sizes is not null ? Dim.Of(sizes[i])
                : s[ax].Value is { } total ? Dim.Of(i < count - 1 || total % count == 0 ? (total + count - 1) / count : total - (total + count - 1) / count * (count - 1))
                : SymbolicDim.Divide(s[ax], Dim.Of(count));
            result[i] = new(type, new Shape(dims));
        }
        return result;
    }

    private static InferredOutput[] Slice(Node n, InferenceContext ctx)
    {
        var x = n.Input(0);
        var type = x?.ElementType ?? ElementType.Undefined;
        if (x?.Shape is not { } s) return [new(type, null)];
        var starts = ctx.KnownOf(n.Input(1));
        var ends = ctx.KnownOf(n.Input(2));
        var axes = n.Input(3) is null ? null : ctx.IntsOf(n.Input(3));
        var steps = n.Input(4) is null ? null : ctx.IntsOf(n.Input(4));
        if (starts is null || ends is null || (n.Input(3) is not null && axes is null) || (n.Input(4) is not null && steps is null))
            return [new(type, new Shape(Enumerable.Repeat(Dim.Unknown, s.Rank)))];
        axes ??= [.. Enumerable.Range(0, starts.Length).Select(i => (long)i)];
        steps ??= [.. Enumerable.Repeat(1L, starts.Length)];
        var dims = s.Dims.ToArray();
        var known = ctx.KnownOf(x);
        for (int i = 0; i < axes.Length; i++)
        {
            int ax = (int)(axes[i] < 0 ? axes[i] + s.Rank : axes[i]);
            dims[ax] = SliceDim(s[ax], starts[i], ends[i], steps[i]);
        }
        if (known is not null && s.Rank == 1 && axes.Length == 1 && starts[0].Value is { } st && ends[0].Value is { } en)
        {
            long len = known.Length, step = steps[0];
            long b = Clamp(st, len, step > 0), e = Clamp(en, len, step > 0);
            var picked = new List<Dim>();
            for (long i = b; step > 0 ? i < e : i > e; i += step) picked.Add(known[i]);
            ctx.Known[n.Outputs[0]] = [.. picked];
        }
        return [new(type, new Shape(dims))];
    }

    private static long Clamp(long v, long len, bool forward)
    {
        if (v < 0) v += len;
        return forward ? Math.Clamp(v, 0, len) : Math.Clamp(v, -1, len - 1);
    }

    private static Dim SliceDim(Dim d, Dim start, Dim end, long step)
    {
        if (d.Value is { } len && start.Value is { } st && end.Value is { } en)
        {
            long b = Clamp(st, len, step > 0), e = Clamp(en, len, step > 0);
            long count = step > 0 ? Math.Max(0, (e - b + step - 1) / step) : Math.Max(0, (b - e + (-step) - 1) / (-step));
            return Dim.Of(count);
        }
        if (step == 1 && start.Value == 0 && end.Value is { } big && big >= int.MaxValue) return d;
        if (step == 1 && start.Value == 0 && end.Param is not null) return end;
        if (step == 1 && start.Value is { } s0 && s0 >= 0 && end.Value is { } e0 && e0 >= int.MaxValue && s0 == 0) return d;
        return Dim.Unknown;
    }

    private static InferredOutput[] Gather(Node n, InferenceContext ctx)
    {
        var x = n.Input(0);
        var idx = n.Input(1);
        var type = x?.ElementType ?? ElementType.Undefined;
        if (x?.Shape is not { } s || idx?.Shape is not { } ishape) return [new(type, null)];
        long axis = n.GetInt("axis", 0);
        int ax = (int)(axis < 0 ? axis + s.Rank : axis);
        var dims = s.Dims.Take(ax).Concat(ishape.Dims).Concat(s.Dims.Skip(ax + 1)).ToArray();
        if (s.Rank == 1 && ctx.KnownOf(x) is { } data && ctx.IntsOf(idx) is { } indices)
            ctx.Known[n.Outputs[0]] = [.. indices.Select(i => data[i < 0 ? i + data.Length : i])];
        return [new(type, new Shape(dims))];
    }

    private static InferredOutput[] Range(Node n, InferenceContext ctx)
    {
        var type = n.Input(0)?.ElementType ?? ElementType.Undefined;
        var start = ctx.KnownOf(n.Input(0))?.SingleOrDefault();
        var limit = ctx.KnownOf(n.Input(1))?.SingleOrDefault();
        var delta = ctx.KnownOf(n.Input(2))?.SingleOrDefault();
        Dim len = Dim.Unknown;
        if (start?.Value is { } a && limit?.Value is { } b && delta?.Value is { } c && c != 0) len = Dim.Of(Math.Max(0, (b - a + c - (c > 0 ? 1 : -1)) / c));
        else if (start?.Value == 0 && delta?.Value == 1 && limit is { } l) len = l;
        return [new(type, new Shape([len]))];
    }

    private static Shape? Reduce(Node n, InferenceContext ctx)
    {
        var s = n.Input(0)?.Shape;
        bool axesAsInput = n.OpType == "ReduceSum" ? ctx.Opset >= 13 : ctx.Opset >= 18;
        long[]? axes = axesAsInput ? (n.Input(1) is null ? [] : ctx.IntsOf(n.Input(1))) : (n.GetInts("axes")?.ToArray() ?? []);
        if (s is null || axes is null) return null;
        bool keep = n.GetInt("keepdims", 1) != 0;
        if (axes.Length == 0)
            return n.GetInt("noop_with_empty_axes", 0) != 0 ? s : ReduceAxes(s, [.. Enumerable.Range(0, s.Rank).Select(i => (long)i)], keep);
        return ReduceAxes(s, axes, keep);
    }

    private static Shape? ReduceAxes(Shape? s, long[] axes, bool keep)
    {
        if (s is null) return null;
        var set = axes.Select(a => (int)(a < 0 ? a + s.Rank : a)).ToHashSet();
        var dims = new List<Dim>();
        for (int i = 0; i < s.Rank; i++)
            if (!set.Contains(i)) dims.Add(s[i]);
            else if (keep) dims.Add(Dim.Of(1));
        return new Shape(dims);
    }

    private static InferredOutput[] LayerNorm(Node n)
    {
        var x = n.Input(0);
        var type = x?.ElementType ?? ElementType.Undefined;
        var stash = (ElementType)n.GetInt("stash_type", 1);
        if (x?.Shape is not { } s) return [new(type, null), new(stash, null), new(stash, null)];
        long axis = n.GetInt("axis", -1);
        int ax = (int)(axis < 0 ? axis + s.Rank : axis);
        var stats = new Shape(s.Dims.Select((d, i) => i < ax ? d : Dim.Of(1)));
        return [new(type, s), new(stash, stats), new(stash, stats)];
    }

    private static Shape? Flatten(Node n)
    {
        if (n.Input(0)?.Shape is not { } s) return null;
        long axis = n.GetInt("axis", 1);
        int ax = (int)(axis < 0 ? axis + s.Rank : axis);
        return new Shape([SymbolicDim.Product(s.Dims.Take(ax)), SymbolicDim.Product(s.Dims.Skip(ax))]);
    }

    private static Shape? Tile(Node n, InferenceContext ctx)
    {
        if (n.Input(0)?.Shape is not { } s || ctx.KnownOf(n.Input(1)) is not { } reps) return null;
        return new Shape(s.Dims.Select((d, i) => SymbolicDim.Multiply(d, reps[i])));
    }

    private static Shape? OneHot(Node n, InferenceContext ctx)
    {
        if (n.Input(0)?.Shape is not { } s) return null;
        var depth = ctx.KnownOf(n.Input(1))?.FirstOrDefault() ?? Dim.Unknown;
        long axis = n.GetInt("axis", -1);
        int rank = s.Rank + 1;
        int ax = (int)(axis < 0 ? axis + rank : axis);
        var dims = s.Dims.ToList();
        dims.Insert(ax, depth);
        return new Shape(dims);
    }

    /// <summary>Evaluates integer elementwise ops on symbolic contents (shape arithmetic in exported graphs).</summary>
    private static void KnownElementwise(Node n, InferenceContext ctx)
    {
        if (n.Inputs.Count != 2) return;
        var a = ctx.KnownOf(n.Input(0));
        var b = ctx.KnownOf(n.Input(1));
        if (a is null || b is null || (a.Length != b.Length && a.Length != 1 && b.Length != 1)) return;
        int len = Math.Max(a.Length, b.Length);
        var r = new Dim[len];
        for (int i = 0; i < len; i++)
        {
            Dim x = a[a.Length == 1 ? 0 : i], y = b[b.Length == 1 ? 0 : i];
            r[i] = n.OpType switch
            {
                "Add" => SymbolicDim.Add(x, y),
                "Sub" => SymbolicDim.Subtract(x, y),
                "Mul" => SymbolicDim.Multiply(x, y),
                "Div" => x.Value is { } p && y.Value is { } q && q != 0 ? Dim.Of(p / q) : SymbolicDim.Divide(x, y),
                "Equal" => Compare(x, y, (p, q) => p == q, sameSymbol: true),
                "Less" => Compare(x, y, (p, q) => p < q, sameSymbol: false),
                "Greater" => Compare(x, y, (p, q) => p > q, sameSymbol: false),
                "LessOrEqual" => Compare(x, y, (p, q) => p <= q, sameSymbol: true),
                "GreaterOrEqual" => Compare(x, y, (p, q) => p >= q, sameSymbol: true),
                "Max" => x.Value is { } p1 && y.Value is { } q1 ? Dim.Of(Math.Max(p1, q1)) : y.Value is <= 1 ? x : x.Value is <= 1 ? y : Dim.Unknown,
                "Min" => x.Value is { } p2 && y.Value is { } q2 ? Dim.Of(Math.Min(p2, q2)) : Dim.Unknown,
                _ => Dim.Unknown,
            };
        }
        ctx.Known[n.Outputs[0]] = r;
    }

    private static Dim Compare(Dim x, Dim y, Func<long, long, bool> op, bool sameSymbol)
    {
        if (x.Value is { } p && y.Value is { } q) return Dim.Of(op(p, q) ? 1 : 0);
        if (x.SameAs(y)) return Dim.Of(sameSymbol ? 1 : 0);
        // A symbolic size is never negative: compare it with a negative constant.
        if (x.Param is not null && y.Value is { } c && c < 0) return Dim.Of(op(0, c) ? 1 : 0);
        if (y.Param is not null && x.Value is { } d && d < 0) return Dim.Of(op(d, 0) ? 1 : 0);
        return Dim.Unknown;
    }

    private static void KnownWhere(Node n, InferenceContext ctx)
    {
        var c = ctx.KnownOf(n.Input(0));
        var x = ctx.KnownOf(n.Input(1));
        var y = ctx.KnownOf(n.Input(2));
        if (c is null || x is null || y is null) return;
        int len = Math.Max(c.Length, Math.Max(x.Length, y.Length));
        var r = new Dim[len];
        for (int i = 0; i < len; i++)
        {
            var cond = c[c.Length == 1 ? 0 : i];
            if (cond.Value is null) return;
            r[i] = cond.Value != 0 ? x[x.Length == 1 ? 0 : i] : y[y.Length == 1 ? 0 : i];
        }
        ctx.Known[n.Outputs[0]] = r;
    }
}
