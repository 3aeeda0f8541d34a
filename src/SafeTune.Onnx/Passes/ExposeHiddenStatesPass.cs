namespace SafeTune.Onnx.Passes;

/// <summary>Locates the per-block hidden states (<see cref="HiddenStateLocator"/>) and exposes them as graph outputs.</summary>
public sealed class ExposeHiddenStatesPass : IGraphPass
{
    /// <summary>The hidden states found by the last <see cref="Apply"/>, in layer order.</summary>
    public IReadOnlyList<HiddenStateCandidate> Located { get; private set; } = [];

    /// <inheritdoc/>
    public string Name => "ExposeHiddenStates";

    /// <inheritdoc/>
    public void CheckPreconditions(Model model)
    {
        if (model.Graph.Outputs.Count == 0) throw new OnnxFormatException($"{Name}: the graph has no outputs.");
    }

    /// <inheritdoc/>
    public PassResult Apply(Model model)
    {
        Located = HiddenStateLocator.Locate(model);
        if (Located.Count == 0)
            throw new OnnxFormatException($"{Name}: no transformer blocks were recognised in graph '{model.Graph.Name}'.");
        return new ExposeValuesPass(Located.Select(h => h.Tensor.Name)).Apply(model);
    }

    /// <inheritdoc/>
    public void CheckPostconditions(Model model)
    {
        if (Located.Any(h => !h.Tensor.IsGraphOutput))
            throw new OnnxFormatException($"{Name}: a located hidden state is not a graph output.");
    }
}
