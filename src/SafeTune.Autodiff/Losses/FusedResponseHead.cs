using SafeTune.Onnx;

namespace SafeTune.Autodiff.Losses;

/// <summary>
/// The language-model head and the response-token loss as one node, computed over chunks of rows so that no
/// vocabulary-sized tensor ever holds more than a chunk (the "fused linear cross-entropy" idea, in standard ops).
/// <para>
/// In the graphs it is a node of the domain <see cref="Domain"/>: inputs <c>hidden</c> [N, d] (the final hidden states of
/// the response positions), <c>head</c> (the frozen head weight, [d, V], or [V, d] with <c>transposed_head = 1</c>, as
/// a tied embedding is), <c>targets</c> [N] (int64), <c>sft_weight</c> [N] and optionally <c>kl_weight</c> [N] and
/// <c>ref_hidden</c> [N, d] (the reference model's hidden rows: its logits are the same head applied to them). Outputs:
/// the loss <c>sum_n w_sft[n] CE_n + w_kl[n] KL(p_ref || p_theta)_n</c>, its gradient with respect to <c>hidden</c>
/// [N, d], and the per-token CE [N] (and KL [N]) for logging.
/// </para>
/// <para>
/// The gradient is computed in the forward pass, chunk by chunk, from the softmax the loss needs anyway
/// (<c>dL/dz = (w_sft + w_kl) softmax(z) - w_kl p_ref - w_sft onehot(y)</c>, and the one-hot part becomes a gathered row of
/// the head), so the backward pass of this node is one product with the upstream scalar. <see cref="Lower"/> turns the
/// node into an ONNX <c>Loop</c> before a session is made: every provider runs it.
/// </para>
/// </summary>
public static class FusedResponseHead
{
    /// <summary>The domain of the fused node (it never reaches ONNX Runtime: <see cref="Lower"/> replaces it).</summary>
    public const string Domain = "ai.safetune";

    /// <summary>The op type of the fused node.</summary>
    public const string OpType = "ResponseHeadLoss";

    /// <summary>
    /// The most bytes one chunk's logits [rows, V] may take; the rows per chunk follow from the vocabulary (110 rows at
    /// Qwen2.5's 151,936-wide head). Each chunk reads the whole head weight (three times with the gradient and the KL
    /// term), which is small beside the rest of a step at the sizes where the fused head is used (see
    /// <c>TrainingOptions.FusedHeadMinBytes</c>).
    /// </summary>
    public const long ChunkBytes = 64L << 20;

    /// <summary>Output indices of the fused node.</summary>
    public const int LossOutput = 0, GradientOutput = 1, CrossEntropyOutput = 2, KlOutput = 3;

    /// <summary>True for the fused node.</summary>
    public static bool Is(Node n) => n.Domain == Domain && n.OpType == OpType;

    /// <summary>Appends the fused node; returns it (outputs as in <see cref="LossOutput"/> and the others).</summary>
    public static Node Append(GraphBuilder b, Value hidden, Value head, bool transposedHead, Value targets, Value sftWeight,
        Value? klWeight = null, Value? referenceHidden = null)
    {
        ArgumentNullException.ThrowIfNull(b);
        if ((klWeight is null) != (referenceHidden is null)) throw new UserInputException("the KL term needs both its weights and the reference's hidden rows.");
        Value?[] inputs = klWeight is null ? [hidden, head, targets, sftWeight] : [hidden, head, targets, sftWeight, klWeight, referenceHidden];
        var node = b.NewNode(OpType, inputs, klWeight is null ? 3 : 4, [Onnx.Attribute.Of("transposed_head", transposedHead ? 1L : 0L)], Domain);
        var n = hidden.Shape is { Rank: 2 } hs ? hs[0] : Dim.Unknown;
        node.Outputs[LossOutput].ElementType = ElementType.Float;
        node.Outputs[LossOutput].Shape = Shape.Scalar;
        node.Outputs[GradientOutput].ElementType = ElementType.Float;
        node.Outputs[GradientOutput].Shape = hidden.Shape;
        for (int i = CrossEntropyOutput; i < node.Outputs.Count; i++)
        {
            node.Outputs[i].ElementType = ElementType.Float;
            node.Outputs[i].Shape = new Shape([n]);
        }
        return node;
    }

    /// <summary>The vocabulary size of a fused node's head (null when unknown).</summary>
    public static long? VocabOf(Node n)
    {
        var head = n.Input(1)!;
        IReadOnlyList<Dim>? dims = head.Shape is { } shape ? [.. shape.Dims] : head.Initializer is { } init ? [.. init.Dims.Select(Dim.Of)] : null;
        if (dims is null || dims.Count != 2) return null;
        return (n.GetInt("transposed_head", 0) == 1 ? dims[0] : dims[1]).Value;
    }

    /// <summary>The rows of one chunk for a vocabulary of <paramref name="vocab"/>.</summary>
    public static long ChunkRows(long vocab) => Math.Clamp(ChunkBytes / (Math.Max(vocab, 1) * sizeof(float)), 8, 8192);

    /// <summary>
    /// The bytes of the vocabulary-sized tensors one chunk holds at once while the lowered node runs (logits, their
    /// exponentials and the gradient, and the reference's when the KL term is there).
    /// </summary>
    public static long WorkspaceBytes(Node n)
    {
        long vocab = VocabOf(n) ?? 0;
        long perChunk = ChunkRows(vocab) * vocab * sizeof(float);
        return perChunk * (n.Outputs.Count > KlOutput ? 8 : 4);
    }

    /// <summary>
    /// Replaces every fused node of <paramref name="model"/> (in place) by standard ops: a <c>Loop</c> over chunks of
    /// rows whose body runs the head, the softmax, the loss terms and (where the gradient output is read) the gradient
    /// rows. <paramref name="chunkRows"/> overrides the rows per chunk (by default <see cref="ChunkRows"/> of the
    /// vocabulary). Returns the number of nodes lowered.
    /// </summary>
    public static int Lower(Model model, long? chunkRows = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (chunkRows is < 1) throw new ArgumentOutOfRangeException(nameof(chunkRows), "a chunk needs at least one row.");
        var g = model.Graph;
        var fused = g.Nodes.Where(Is).ToList();
        foreach (var node in fused) LowerOne(model, node, chunkRows);
        if (fused.Count > 0) g.SortTopologically();
        return fused.Count;
    }

    private static void LowerOne(Model model, Node node, long? chunkRows)
    {
        var g = model.Graph;
        long opset = model.DefaultOpset;
        var b = new GraphBuilder(g, opset);
        using var _ = b.Scope(node.Name.TrimStart('/') + "/lowered");
        bool kl = node.Outputs.Count > KlOutput;
        bool transposed = node.GetInt("transposed_head", 0) == 1;
        bool gradient = node.Outputs[GradientOutput] is var go && (go.Uses.Count > 0 || go.IsGraphOutput);
        var hidden = node.Input(0)!;
        var head = node.Input(1)!;
        var targets = node.Input(2)!;
        var sftWeight = node.Input(3)!;
        var klWeight = kl ? node.Input(4) : null;
        var refHidden = kl ? node.Input(5) : null;
        long vocab = VocabOf(node) ?? throw new GradientException($"the fused response head '{node.Name}' has a head weight of unknown shape.");
        long rows = chunkRows ?? ChunkRows(vocab);

        // Pad the rows to a whole number of chunks (padded rows weigh 0 and read token 0).
        var n = b.Slice(b.ShapeOf(hidden), [0], [1], [0]);                                        // [1]
        var chunk = b.Ints(rows);
        var count = b.Div(b.Add(n, b.Ints(rows - 1)), chunk);                                       // [1]: chunks
        var pad = b.Sub(b.Mul(count, chunk), n);                                                     // [1]
        var zero = b.Ints(0);
        Value PadRows(Value x, bool matrix) =>
            b.Op("Pad", x, matrix ? b.Concat(0, zero, zero, pad, zero) : b.Concat(0, zero, pad));
        var hiddenP = PadRows(hidden, true);
        var targetsP = PadRows(targets, false);
        var sftP = PadRows(sftWeight, false);
        var klP = klWeight is null ? null : PadRows(klWeight, false);
        var refP = refHidden is null ? null : PadRows(refHidden, true);

        // The body: chunk i of the rows.
        var body = g.CreateSubgraph("response_head_chunk");
        var bb = new GraphBuilder(body, opset);
        Value BodyInput(string hint, ElementType type)
        {
            var name = body.Names.NewValueName(hint);
            body.Names.ReleaseValueName(name);
            return body.AddInput(name, type, Shape.Scalar);
        }
        var iteration = BodyInput("chunk_index", ElementType.Int64);
        var condIn = BodyInput("cond_in", ElementType.Bool);
        var start = bb.Mul(bb.Reshape(iteration, 1), bb.Ints(rows));
        var end = bb.Add(start, bb.Ints(rows));
        Value Rows(Value x) => bb.Op("Slice", x, start, end, bb.Ints(0));
        var h = Rows(hiddenP);                                                                        // [c, d]
        var t = Rows(targetsP);                                                                       // [c]
        var ws = bb.Unsqueeze(Rows(sftP), 1);                                                         // [c, 1]
        Value Logits(Value x) => bb.Gemm(x, head, transB: transposed);                                // [c, V]

        // LogSoftmax is one optimized kernel (no separate max, shift, exp and sum passes over the chunk).
        var logP = bb.LogSoftmax(Logits(h), 1);                                                       // [c, V]
        var picked = bb.Op("GatherElements", [logP, bb.Unsqueeze(t, 1)], Onnx.Attribute.Of("axis", 1L)); // [c, 1]
        var ce = bb.Reshape(bb.Neg(picked), -1);                                                      // [c]
        var scanOutputs = new List<Value>();
        Value? klChunk = null;
        Value dz;
        if (kl)
        {
            var wk = bb.Unsqueeze(Rows(klP!), 1);
            var logR = bb.LogSoftmax(Logits(Rows(refP!)), 1);
            var pr = bb.Exp(logR);
            // KL(p_ref || p) = sum_v p_ref (log p_ref - log p).
            klChunk = bb.ReduceSum(bb.Mul(pr, bb.Sub(logR, logP)), [1], keepDims: false);
            dz = gradient ? bb.Sub(bb.Mul(bb.Exp(logP), bb.Add(ws, wk)), bb.Mul(pr, wk)) : null!;
        }
        else dz = gradient ? bb.Mul(bb.Exp(logP), ws) : null!;
        if (gradient)
        {
            // dL/dh = dL/dz head^T, less w_sft times the head's row of each target (the one-hot part of the CE gradient).
            var dh = bb.Gemm(dz, head, transB: !transposed);                                          // [c, d]
            var targetRows = transposed ? bb.Gather(head, t, 0) : bb.Transpose(bb.Gather(head, t, 1), 1, 0);
            scanOutputs.Add(bb.Sub(dh, bb.Mul(ws, targetRows)));
        }
        scanOutputs.Add(ce);
        if (klChunk is not null) scanOutputs.Add(klChunk);
        body.AddOutput(bb.Identity(condIn));
        foreach (var o in scanOutputs) body.AddOutput(bb.Identity(o));

        foreach (var o in body.Outputs.Skip(1)) o.ElementType = ElementType.Float;
        var loop = b.NewNode("Loop", [b.Reshape(count, []), b.Constant(TensorData.Scalar("always", true))], scanOutputs.Count, [Onnx.Attribute.Of("body", body)]);
        foreach (var o in loop.Outputs) o.ElementType = ElementType.Float;
        int k = 0;
        var width = b.Slice(b.ShapeOf(hidden), [1], [2], [0]);
        Value Unpad(Value stacked, bool matrix) =>
            b.Op("Slice", b.Reshape(stacked, matrix ? b.Concat(0, b.Ints(-1), width) : b.Ints(-1)), zero, n, zero);
        Value? gradOut = gradient ? Unpad(loop.Outputs[k++], true) : null;
        var ceOut = Unpad(loop.Outputs[k++], false);
        var klOut = kl ? Unpad(loop.Outputs[k++], false) : null;
        Value WeightedSum(Value perToken, Value weight) => b.ReduceSum(b.Mul(perToken, weight), [0], keepDims: false);
        var loss = WeightedSum(ceOut, sftWeight);
        if (klOut is not null) loss = b.Add(loss, WeightedSum(klOut, klWeight!));

        Replace(g, node.Outputs[LossOutput], loss);
        if (gradOut is not null) Replace(g, node.Outputs[GradientOutput], gradOut);
        Replace(g, node.Outputs[CrossEntropyOutput], ceOut);
        if (klOut is not null) Replace(g, node.Outputs[KlOutput], klOut);
        g.RemoveNode(node);
    }

    private static void Replace(Graph g, Value old, Value replacement)
    {
        if (old.IsGraphOutput)
        {
            // Keep the output's name: it is what callers bind.
            var name = old.Name;
            g.ReplaceAllUses(old, replacement);
            var freed = g.Names.NewValueName(name + "_fused");
            g.Names.ReleaseValueName(freed);
            g.RenameValue(old, freed);
            g.RenameValue(replacement, name);
        }
        else g.ReplaceAllUses(old, replacement);
    }
}

/// <summary>
/// The fused head's backward: the gradient rows it computed in the forward pass times the upstream scalar. The head
/// weight, the targets and the reference's rows are not differentiated (the head is frozen where the node is used).
/// </summary>
internal sealed class ResponseHeadLossGrad : IGradientRule
{
    public void Build(GradientContext c)
    {
        for (int i = 1; i < c.Node.Inputs.Count; i++)
            if (c.NeedGI(i))
                throw new GradientException($"the fused response head '{c.Node.Name}' does not differentiate its input {i} ('{c.Node.Input(i)!.Name}'): " +
                    "it is built only where the head weight is frozen.");
        for (int o = 1; o < c.Node.Outputs.Count; o++)
            if (c.GO(o) is not null && o != FusedResponseHead.GradientOutput)
                throw new GradientException($"the per-token terms of the fused response head '{c.Node.Name}' are for logging; they are not differentiated.");
        if (!c.NeedGI(0)) return;
        var g = c.GO(FusedResponseHead.LossOutput) ?? throw new GradientException($"the fused response head '{c.Node.Name}' has no gradient for its loss.");
        c.SetGI(0, c.B.Mul(c.O(FusedResponseHead.GradientOutput), g));
    }
}
