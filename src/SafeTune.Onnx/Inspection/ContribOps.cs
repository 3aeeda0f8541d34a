namespace SafeTune.Onnx.Inspection;

/// <summary>
/// ONNX Runtime's contrib operators (domain <c>com.microsoft</c>: GroupQueryAttention, MatMulNBits,
/// SkipSimplifiedLayerNormalization, RotaryEmbedding...), as ONNX Runtime GenAI's model builder and quantizers write them.
/// ONNX Runtime runs them, so such a model can be evaluated, served and probed; SafeTune has no gradient rule for them,
/// so it cannot be trained.
/// </summary>
public static class ContribOps
{
    /// <summary>The contrib operators' domain.</summary>
    public const string Domain = "com.microsoft";

    /// <summary>The distinct contrib operator types in the model (subgraphs included), in ordinal order.</summary>
    public static IReadOnlyList<string> Find(Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return [.. model.Graph.AllNodes().Where(n => n.Domain == Domain).Select(n => n.OpType).Distinct().Order(StringComparer.Ordinal)];
    }

    /// <summary>Refuses a model with contrib operators for training; the message names <paramref name="where"/> and the operators.</summary>
    /// <exception cref="InvalidDataException">The model has contrib operators.</exception>
    public static void EnsureTrainable(Model model, string where)
    {
        var ops = Find(model);
        if (ops.Count > 0)
            throw new InvalidDataException(
                $"{where}: the model uses ONNX Runtime contrib ops ({Domain}: {string.Join(", ", ops)}), which SafeTune runs for inference but cannot train; " +
                "train from the Hub checkpoint instead (safetune export --from-hf DIR --out MODEL.onnx).");
    }
}
