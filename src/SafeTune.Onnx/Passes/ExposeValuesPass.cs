namespace SafeTune.Onnx.Passes;

/// <summary>
/// Makes intermediate tensors graph outputs, so a session returns them alongside the model's own outputs
/// (hidden states for a probe, activations for debugging). Existing outputs keep their order and come first.
/// </summary>
public sealed class ExposeValuesPass(IEnumerable<string> valueNames) : IGraphPass
{
    private readonly string[] _names = [.. valueNames];

    /// <inheritdoc/>
    public string Name => "ExposeValues";

    /// <inheritdoc/>
    public void CheckPreconditions(Model model)
    {
        var missing = _names.Where(n => model.Graph.FindValue(n) is not { } v || v.Graph != model.Graph).ToList();
        if (missing.Count > 0)
            throw new OnnxFormatException($"{Name}: the main graph has no value named {string.Join(", ", missing.Select(m => $"'{m}'"))}.");
    }

    /// <inheritdoc/>
    public PassResult Apply(Model model)
    {
        bool modified = false;
        // Graph outputs need a type; infer it for intermediates that carry none.
        if (_names.Any(n => model.Graph.GetValue(n).ElementType == ElementType.Undefined)) Shapes.ShapeInference.Run(model);
        foreach (var name in _names)
        {
            var v = model.Graph.GetValue(name);
            if (v.IsGraphOutput) continue;
            model.Graph.AddOutput(v);
            modified = true;
        }
        return new PassResult(model, modified);
    }

    /// <inheritdoc/>
    public void CheckPostconditions(Model model)
    {
        foreach (var name in _names)
            if (!model.Graph.GetValue(name).IsGraphOutput)
                throw new OnnxFormatException($"{Name}: '{name}' is not a graph output after the pass.");
    }
}
