using SafeTune.Onnx;

namespace SafeTune.Models.Generation;

/// <summary>
/// The inputs of a key/value-cache decoder graph and what every layer derives from them: token positions from the
/// attention mask and the additive attention bias (padding and future keys blocked).
/// </summary>
internal sealed class KvCacheInputs
{
    private KvCacheInputs(Value attentionMask, Value positions, Value bias, Value[] pastKeys, Value[] pastValues)
    {
        AttentionMask = attentionMask;
        Positions = positions;
        Bias = bias;
        PastKeys = pastKeys;
        PastValues = pastValues;
    }

    /// <summary>The <c>attention_mask</c> input, int64 [batch, past_sequence + sequence].</summary>
    public Value AttentionMask { get; }

    /// <summary>Position of each new token, int64 [batch, sequence]: real tokens before it in its row (cumsum - 1, at least 0).</summary>
    public Value Positions { get; }

    /// <summary>Additive attention bias, float [batch, 1, sequence, past_sequence + sequence]: 0 where a query may attend, float.MinValue elsewhere.</summary>
    public Value Bias { get; }

    /// <summary>The <c>past_key_values.{i}.key</c> inputs.</summary>
    public Value[] PastKeys { get; }

    /// <summary>The <c>past_key_values.{i}.value</c> inputs.</summary>
    public Value[] PastValues { get; }

    private readonly List<(Value Value, string Name)> _presents = [];

    /// <summary>Records <paramref name="value"/> as the present output <paramref name="name"/> (added after the logits) and returns it.</summary>
    public Value Present(Value value, string name)
    {
        _presents.Add((value, name));
        return value;
    }

    /// <summary>Adds the recorded present keys/values as graph outputs, in layer order.</summary>
    public void AddPresentOutputs(GraphBuilder b)
    {
        foreach (var (value, name) in _presents) b.Output(value, name);
    }

    /// <summary>Name of layer <paramref name="layer"/>'s past-key input.</summary>
    public static string PastKey(int layer) => $"past_key_values.{layer}.key";

    /// <summary>Name of layer <paramref name="layer"/>'s past-value input.</summary>
    public static string PastValue(int layer) => $"past_key_values.{layer}.value";

    /// <summary>Name of layer <paramref name="layer"/>'s present-key output.</summary>
    public static string PresentKey(int layer) => $"present.{layer}.key";

    /// <summary>Name of layer <paramref name="layer"/>'s present-value output.</summary>
    public static string PresentValue(int layer) => $"present.{layer}.value";

    /// <summary>Adds the mask and past inputs after <paramref name="ids"/> and the nodes computing positions and the bias.</summary>
    public static KvCacheInputs Add(GraphBuilder b, Value ids, int layers, int kvHeads, int headDim)
    {
        var batch = Dim.Symbol("batch");
        var mask = b.Input("attention_mask", ElementType.Int64, batch, Dim.Symbol("total_sequence"));
        var keys = new Value[layers];
        var values = new Value[layers];
        for (int i = 0; i < layers; i++)
        {
            keys[i] = b.Input(PastKey(i), ElementType.Float, batch, Dim.Of(kvHeads), Dim.Symbol("past_sequence"), Dim.Of(headDim));
            values[i] = b.Input(PastValue(i), ElementType.Float, batch, Dim.Of(kvHeads), Dim.Symbol("past_sequence"), Dim.Of(headDim));
        }
        Value positions, bias, total, past;
        using (b.Scope("past_length"))
        {
            var sequence = b.Slice(b.ShapeOf(ids), [1], [2], [0]);                        // [T]
            total = b.Slice(b.ShapeOf(mask), [1], [2], [0]);                              // [P + T]
            past = b.Sub(total, sequence);                                                // [P]
        }
        using (b.Scope("position_ids"))
        {
            var counted = b.Sub(b.Op("CumSum", mask, b.ScalarInt(1)), b.ScalarInt(1));   // (B, P + T)
            var clamped = b.Op("Max", counted, b.ScalarInt(0));
            positions = b.Op("Slice", clamped, past, b.Ints(long.MaxValue), b.Ints(1));  // (B, T)
        }
        using (b.Scope("attention_bias"))
        {
            var totalScalar = b.Squeeze(total, 0);
            var keyIndex = b.Op("Range", b.ScalarInt(0), totalScalar, b.ScalarInt(1));              // (P + T)
            var queryIndex = b.Op("Range", b.Squeeze(past, 0), totalScalar, b.ScalarInt(1));       // (T): absolute index
            var future = b.Op("Greater", b.Unsqueeze(keyIndex, 0), b.Unsqueeze(queryIndex, 1));   // (T, P + T)
            var padding = b.Equal(b.Unsqueeze(mask, 1, 2), b.ScalarInt(0));                       // (B, 1, 1, P + T)
            var blocked = b.Op("Or", future, padding);                                              // (B, 1, T, P + T)
            bias = b.Where(blocked, b.Scalar(float.MinValue), b.Scalar(0f));
        }
        return new KvCacheInputs(mask, positions, bias, keys, values);
    }
}
