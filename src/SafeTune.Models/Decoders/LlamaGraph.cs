using SafeTune.Models.Generation;
using SafeTune.Onnx;

namespace SafeTune.Models.Decoders;

/// <summary>
/// Builds a Llama-family decoder as an ONNX graph from standard ops: RMSNorm, rotary position embeddings with
/// <c>rope_theta</c>, grouped-query attention (shared key/value heads repeated with Expand + Reshape), a SwiGLU MLP and
/// a tied or untied LM head. Input <c>input_ids</c> int64 [batch, sequence]; output <c>logits</c> float [batch, sequence, vocab].
/// Weights use the Hub's names and layout (<c>model.layers.3.self_attn.q_proj.weight</c>, [out, in]); node names are
/// hierarchical (<c>/model/layers.3/self_attn/q_proj/MatMul</c>). With <see cref="DecoderGraphOptions.KvCache"/> the graph
/// also takes an attention mask and past keys/values and returns the present ones (see <see cref="DecoderGraphOptions"/>).
/// </summary>
public static class LlamaGraph
{
    /// <summary>
    /// Builds the graph. Weights come from <paramref name="weights"/> (by Hub name), else are drawn from a seeded N(0, 0.02).
    /// <paramref name="options"/> picks the variant (default: the plain graph with the single input <c>input_ids</c>).
    /// </summary>
    public static Model Build(LlamaConfig config, IReadOnlyDictionary<string, TensorData>? weights = null, int seed = 0, long opset = 17,
        DecoderGraphOptions? options = null)
    {
        config.Validate();
        var init = new WeightSource(weights, seed);
        var b = GraphBuilder.ForNewModel(opset);
        var ids = b.Input("input_ids", ElementType.Int64, Dim.Symbol("batch"), Dim.Symbol("sequence"));
        int d = config.HiddenSize, hd = config.HeadDim;
        var cache = options?.KvCache == true ? KvCacheInputs.Add(b, ids, config.Layers, config.KeyValueHeads, hd) : null;

        Value embedTable = b.Parameter(init.Get("model.embed_tokens.weight", config.VocabSize, d));
        Value x, cos, sin, mask;
        using (b.Scope("model"))
        {
            using (b.Scope("embed_tokens")) x = b.Gather(embedTable, ids); // (B, T, d)
            using (b.Scope("rotary_emb")) (cos, sin) = cache is null ? Rotary(b, ids, config) : RotaryAt(b, cache.Positions, config); // (T, hd) or (B, 1, T, hd)
            using (b.Scope("causal_mask")) mask = cache is null ? CausalMask(b, ids) : cache.Bias;                            // (T, T) or (B, 1, T, P + T)
            for (int l = 0; l < config.Layers; l++)
            {
                using var layer = b.Scope($"layers.{l}");
                string p = $"model.layers.{l}";
                Value h;
                using (b.Scope("input_layernorm")) h = RmsNorm(b, x, b.Parameter(init.Ones($"{p}.input_layernorm.weight", d)), config.RmsNormEpsilon);
                Value attn;
                using (b.Scope("self_attn")) attn = Attention(b, h, cos, sin, mask, config, init, p, cache, l);
                x = b.Add(x, attn);
                using (b.Scope("post_attention_layernorm")) h = RmsNorm(b, x, b.Parameter(init.Ones($"{p}.post_attention_layernorm.weight", d)), config.RmsNormEpsilon);
                Value mlp;
                using (b.Scope("mlp")) mlp = Mlp(b, h, config, init, p);
                x = b.Add(x, mlp); // (B, T, d): this block's output on the residual stream
            }
            using (b.Scope("norm")) x = RmsNorm(b, x, b.Parameter(init.Ones("model.norm.weight", d)), config.RmsNormEpsilon);
        }
        Value logits;
        using (b.Scope("lm_head"))
        {
            var head = config.TieWordEmbeddings ? embedTable : b.Parameter(init.Get("lm_head.weight", config.VocabSize, d));
            logits = b.MatMul(x, b.Transpose(head, 1, 0)); // (B, T, vocab)
        }
        b.Output(logits, "logits");
        cache?.AddPresentOutputs(b);
        var model = b.Model!;
        model.ProducerName = "SafeTune";
        Onnx.Shapes.ShapeInference.Run(model);
        return model;
    }

    private static Value Linear(GraphBuilder b, Value x, Value weight, string scope, Value? bias = null)
    {
        using var _ = b.Scope(scope);
        var y = b.MatMul(x, b.Transpose(weight, 1, 0));
        return bias is null ? y : b.Add(y, bias);
    }

    private static Value RmsNorm(GraphBuilder b, Value x, Value weight, float eps)
    {
        var meanSquare = b.ReduceMean(b.Mul(x, x), [-1]);                       // (B, T, 1)
        var inv = b.Reciprocal(b.Sqrt(b.Add(meanSquare, b.Scalar(eps))));
        return b.Mul(b.Mul(x, inv), weight);
    }

    private static (Value cos, Value sin) Rotary(GraphBuilder b, Value ids, LlamaConfig c)
    {
        int hd = c.HeadDim;
        var invFreq = c.InverseFrequencies();
        var length = b.Gather(b.ShapeOf(ids), b.ScalarInt(1));                    // T
        var positions = b.Cast(b.Op("Range", b.ScalarInt(0), length, b.ScalarInt(1)), ElementType.Float); // (T)
        var freqs = b.Mul(b.Unsqueeze(positions, 1), b.Constant(TensorData.Create<float>("inv_freq", [1, hd / 2], invFreq))); // (T, hd/2)
        var emb = b.Concat(-1, freqs, freqs);                                     // (T, hd)
        return (b.Cos(emb), b.Sin(emb));
    }

    /// <summary>Rotary tables for per-row positions (B, T) int64: cos and sin (B, 1, T, hd), broadcast over heads.</summary>
    private static (Value cos, Value sin) RotaryAt(GraphBuilder b, Value positionIds, LlamaConfig c)
    {
        int hd = c.HeadDim;
        var invFreq = c.InverseFrequencies();
        var positions = b.Cast(positionIds, ElementType.Float);                                                   // (B, T)
        var freqs = b.Mul(b.Unsqueeze(positions, 2), b.Constant(TensorData.Create<float>("inv_freq", [1, hd / 2], invFreq))); // (B, T, hd/2)
        var emb = b.Unsqueeze(b.Concat(-1, freqs, freqs), 1);                                                    // (B, 1, T, hd)
        return (b.Cos(emb), b.Sin(emb));
    }

    private static Value CausalMask(GraphBuilder b, Value ids)
    {
        var length = b.Gather(b.ShapeOf(ids), b.ScalarInt(1));
        var positions = b.Op("Range", b.ScalarInt(0), length, b.ScalarInt(1));  // (T)
        var future = b.Op("Greater", b.Unsqueeze(positions, 0), b.Unsqueeze(positions, 1)); // (T, T): key after query
        return b.Where(future, b.Scalar(float.MinValue), b.Scalar(0f));
    }

    private static Value RotateHalf(GraphBuilder b, Value x, int hd)
    {
        var halves = b.Split(x, -1, hd / 2, hd / 2);
        return b.Concat(-1, b.Neg(halves[1]), halves[0]);
    }

    private static Value Attention(GraphBuilder b, Value h, Value cos, Value sin, Value mask, LlamaConfig c, WeightSource init, string p,
        KvCacheInputs? cache, int layer)
    {
        int d = c.HiddenSize, hd = c.HeadDim, kvw = c.KeyValueHeads * hd, rep = c.Heads / c.KeyValueHeads;
        Value? Bias(string name, long size) => c.AttentionBias ? b.Parameter(init.Get($"{p}.self_attn.{name}.bias", size)) : null;
        var q = Linear(b, h, b.Parameter(init.Get($"{p}.self_attn.q_proj.weight", d, d)), "q_proj", Bias("q_proj", d));       // (B, T, d)
        var k = Linear(b, h, b.Parameter(init.Get($"{p}.self_attn.k_proj.weight", kvw, d)), "k_proj", Bias("k_proj", kvw));   // (B, T, kv*hd)
        var v = Linear(b, h, b.Parameter(init.Get($"{p}.self_attn.v_proj.weight", kvw, d)), "v_proj", Bias("v_proj", kvw));
        q = b.Transpose(b.Reshape(q, 0, 0, c.Heads, hd), 0, 2, 1, 3);                 // (B, H, T, hd)
        k = b.Transpose(b.Reshape(k, 0, 0, c.KeyValueHeads, hd), 0, 2, 1, 3);         // (B, KV, T, hd)
        v = b.Transpose(b.Reshape(v, 0, 0, c.KeyValueHeads, hd), 0, 2, 1, 3);
        q = b.Add(b.Mul(q, cos), b.Mul(RotateHalf(b, q, hd), sin));
        k = b.Add(b.Mul(k, cos), b.Mul(RotateHalf(b, k, hd), sin));
        if (cache is not null)
        {
            // Past keys/values (already rotated) followed by this call's: (B, KV, P + T, hd).
            k = cache.Present(b.Concat(2, cache.PastKeys[layer], k), KvCacheInputs.PresentKey(layer));
            v = cache.Present(b.Concat(2, cache.PastValues[layer], v), KvCacheInputs.PresentValue(layer));
        }
        if (rep > 1)
        {
            // Repeat each shared key/value head for its group of query heads: (B, KV, T, hd) -> (B, H, T, hd).
            var expand = b.Ints(1, 1, rep, 1, 1);
            k = b.Reshape(b.Expand(b.Unsqueeze(k, 2), expand), 0, c.Heads, -1, hd);
            v = b.Reshape(b.Expand(b.Unsqueeze(v, 2), expand), 0, c.Heads, -1, hd);
        }
        var scores = b.Mul(b.MatMul(q, b.Transpose(k, 0, 1, 3, 2)), b.Scalar((float)(1.0 / Math.Sqrt(hd)))); // (B, H, T, T)
        var probs = b.Softmax(b.Add(scores, mask), -1);
        var context = b.Reshape(b.Transpose(b.MatMul(probs, v), 0, 2, 1, 3), 0, 0, d); // (B, T, d)
        return Linear(b, context, b.Parameter(init.Get($"{p}.self_attn.o_proj.weight", d, d)), "o_proj");
    }

    private static Value Mlp(GraphBuilder b, Value h, LlamaConfig c, WeightSource init, string p)
    {
        int d = c.HiddenSize, f = c.IntermediateSize;
        var gate = Linear(b, h, b.Parameter(init.Get($"{p}.mlp.gate_proj.weight", f, d)), "gate_proj"); // (B, T, f)
        var up = Linear(b, h, b.Parameter(init.Get($"{p}.mlp.up_proj.weight", f, d)), "up_proj");
        var act = b.Mul(gate, b.Sigmoid(gate));                                                        // SiLU
        return Linear(b, b.Mul(act, up), b.Parameter(init.Get($"{p}.mlp.down_proj.weight", d, f)), "down_proj");
    }
}
