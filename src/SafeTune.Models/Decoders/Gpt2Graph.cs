using SafeTune.Models.Generation;
using SafeTune.Onnx;

namespace SafeTune.Models.Decoders;

/// <summary>
/// Builds a GPT-2 decoder as an ONNX graph from standard ops: learned positions, pre-norm blocks (LayerNormalization),
/// fused q/k/v projection, causal attention, gelu_new MLP, final norm and a head tied to the token embedding (ONE
/// initializer). Weights keep the Hub's names and Conv1D layout ([in, out]); an optional prefix (e.g. <c>transformer.</c>)
/// is kept as found. Input <c>input_ids</c> [batch, sequence]; output <c>logits</c> [batch, sequence, vocab]. With
/// <see cref="DecoderGraphOptions.KvCache"/> the graph also takes an attention mask and past keys/values and returns the
/// present ones (see <see cref="DecoderGraphOptions"/>); positions then count the real tokens before each token.
/// </summary>
public static class Gpt2Graph
{
    /// <summary>
    /// Builds the graph; weights come from <paramref name="weights"/> (by Hub name) or a seeded N(0, 0.02).
    /// <paramref name="options"/> picks the variant (default: the plain graph with the single input <c>input_ids</c>).
    /// </summary>
    public static Model Build(Gpt2Config config, IReadOnlyDictionary<string, TensorData>? weights = null, string prefix = "", int seed = 0, long opset = 17,
        DecoderGraphOptions? options = null)
    {
        config.Validate();
        var init = new WeightSource(weights, seed);
        int d = config.HiddenSize, hd = d / config.Heads, inner = config.InnerSize ?? 4 * d;
        var b = GraphBuilder.ForNewModel(opset);
        var ids = b.Input("input_ids", ElementType.Int64, Dim.Symbol("batch"), Dim.Symbol("sequence"));
        var cache = options?.KvCache == true ? KvCacheInputs.Add(b, ids, config.Layers, config.Heads, hd) : null;
        string P(string name) => prefix + name;
        var wte = b.Parameter(init.Get(P("wte.weight"), config.VocabSize, d));
        Value x;
        using (b.Scope("transformer"))
        {
            Value positions;                                                                                 // (T) or (B, T)
            if (cache is null)
            {
                var length = b.Gather(b.ShapeOf(ids), b.ScalarInt(1));
                positions = b.Op("Range", b.ScalarInt(0), length, b.ScalarInt(1));
            }
            else positions = cache.Positions;
            using (b.Scope("wte")) x = b.Gather(wte, ids);                                                   // (B, T, d)
            using (b.Scope("wpe")) x = b.Add(x, b.Gather(b.Parameter(init.Get(P("wpe.weight"), config.Positions, d)), positions));
            Value mask;
            if (cache is not null) mask = cache.Bias;                                                       // (B, 1, T, P + T)
            else using (b.Scope("causal_mask"))
            {
                var future = b.Op("Greater", b.Unsqueeze(positions, 0), b.Unsqueeze(positions, 1));
                mask = b.Where(future, b.Scalar(float.MinValue), b.Scalar(0f));                               // (T, T)
            }
            for (int l = 0; l < config.Layers; l++)
            {
                using var layer = b.Scope($"h.{l}");
                string p = P($"h.{l}");
                Value h;
                using (b.Scope("ln_1")) h = Norm(b, x, init, $"{p}.ln_1", d, config.LayerNormEpsilon);
                using (b.Scope("attn")) h = Attention(b, h, mask, config, init, p, hd, cache, l);
                x = b.Add(x, h);
                using (b.Scope("ln_2")) h = Norm(b, x, init, $"{p}.ln_2", d, config.LayerNormEpsilon);
                using (b.Scope("mlp"))
                {
                    h = Conv1D(b, h, init, $"{p}.mlp.c_fc", d, inner, "c_fc");
                    h = Activation(b, h, config.Activation);
                    h = Conv1D(b, h, init, $"{p}.mlp.c_proj", inner, d, "c_proj");
                }
                x = b.Add(x, h);                                                                             // block output
            }
            using (b.Scope("ln_f")) x = Norm(b, x, init, P("ln_f"), d, config.LayerNormEpsilon);
        }
        Value logits;
        using (b.Scope("lm_head"))
        {
            var head = config.TieWordEmbeddings ? wte : b.Parameter(init.Get("lm_head.weight", config.VocabSize, d));
            logits = b.MatMul(x, b.Transpose(head, 1, 0));
        }
        b.Output(logits, "logits");
        cache?.AddPresentOutputs(b);
        var model = b.Model!;
        Onnx.Shapes.ShapeInference.Run(model);
        return model;
    }

    private static Value Norm(GraphBuilder b, Value x, WeightSource init, string name, int d, float eps) =>
        b.LayerNormalization(x, b.Parameter(init.Ones($"{name}.weight", d)), b.Parameter(init.Get($"{name}.bias", d)), -1, eps);

    private static Value Conv1D(GraphBuilder b, Value x, WeightSource init, string name, int inputs, int outputs, string scope)
    {
        using var _ = b.Scope(scope);
        return b.Add(b.MatMul(x, b.Parameter(init.Get($"{name}.weight", inputs, outputs))), b.Parameter(init.Get($"{name}.bias", outputs)));
    }

    private static Value Activation(GraphBuilder b, Value x, string kind)
    {
        switch (kind)
        {
            case "relu":
                return b.Relu(x);
            case "gelu":
                // 0.5 x (1 + erf(x / sqrt 2))
                return b.Mul(b.Mul(x, b.Scalar(0.5f)), b.Add(b.Scalar(1f), b.Erf(b.Div(x, b.Scalar(MathF.Sqrt(2f))))));
            default:
                // gelu_new: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
                var cube = b.Mul(b.Mul(x, x), x);
                var inner = b.Mul(b.Add(x, b.Mul(cube, b.Scalar(0.044715f))), b.Scalar(MathF.Sqrt(2f / MathF.PI)));
                return b.Mul(b.Mul(x, b.Scalar(0.5f)), b.Add(b.Scalar(1f), b.Tanh(inner)));
        }
    }

    private static Value Attention(GraphBuilder b, Value h, Value mask, Gpt2Config c, WeightSource init, string p, int hd, KvCacheInputs? cache, int layer)
    {
        int d = c.HiddenSize;
        var qkv = Conv1D(b, h, init, $"{p}.attn.c_attn", d, 3 * d, "c_attn");                               // (B, T, 3d)
        var parts = b.Split(qkv, -1, d, d, d);
        Value Heads(Value t) => b.Transpose(b.Reshape(t, 0, 0, c.Heads, hd), 0, 2, 1, 3);                      // (B, H, T, hd)
        Value q = Heads(parts[0]), k = Heads(parts[1]), v = Heads(parts[2]);
        if (cache is not null)
        {
            k = cache.Present(b.Concat(2, cache.PastKeys[layer], k), KvCacheInputs.PresentKey(layer));   // (B, H, P + T, hd)
            v = cache.Present(b.Concat(2, cache.PastValues[layer], v), KvCacheInputs.PresentValue(layer));
        }
        var scores = b.Div(b.MatMul(q, b.Transpose(k, 0, 1, 3, 2)), b.Scalar(MathF.Sqrt(hd)));               // (B, H, T, T)
        var probs = b.Softmax(b.Add(scores, mask), -1);
        var context = b.Reshape(b.Transpose(b.MatMul(probs, v), 0, 2, 1, 3), 0, 0, d);
        return Conv1D(b, context, init, $"{p}.attn.c_proj", d, d, "c_proj");
    }
}
