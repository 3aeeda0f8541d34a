using SafeTune.Onnx.Inspection;

namespace SafeTune.Onnx.Passes;

/// <summary>
/// Ties copies back to the tensor they copy: every read of the copy reads the kept initializer instead, through a
/// Transpose node when the copy is transposed, and the copy's initializer goes. The Transpose node's output takes the
/// copy's name, so the graph reads as before with one tensor fewer; training then gives the kept tensor the summed
/// gradient of both uses, as PyTorch does for a tied parameter.
/// </summary>
public sealed class RetieCopiesPass(IEnumerable<TiedCopy> ties) : IGraphPass
{
    private readonly TiedCopy[] _ties = [.. ties];

    /// <inheritdoc/>
    public string Name => "RetieCopies";

    /// <inheritdoc/>
    public void CheckPreconditions(Model model)
    {
        foreach (var t in _ties)
        {
            foreach (var name in new[] { t.Kept, t.Copy })
                if (model.Graph.FindInitializer(name) is not { } v || v.IsGraphInput)
                    throw new OnnxFormatException($"{Name}: '{name}' is not an initializer of the main graph.");
            if (t.Copy == t.Kept || _ties.Any(o => o.Kept == t.Copy))
                throw new OnnxFormatException($"{Name}: '{t.Copy}' is both kept and tied away.");
        }
    }

    /// <inheritdoc/>
    public PassResult Apply(Model model)
    {
        var g = model.Graph;
        foreach (var t in _ties)
        {
            var kept = g.FindInitializer(t.Kept)!;
            var copy = g.FindInitializer(t.Copy)!;
            if (!t.Transposed)
            {
                g.ReplaceAllUses(copy, kept);
                g.RemoveInitializer(copy);
                continue;
            }
            var node = g.AddNode("Transpose", [kept], [t.Copy + "_retied"], [Attribute.Of("perm", [1L, 0L])], name: g.Names.NewNodeName($"/retie/{t.Copy}/Transpose"));
            var output = node.Outputs[0];
            output.ElementType = copy.ElementType;
            output.Shape = copy.Shape;
            g.ReplaceAllUses(copy, output);
            g.RemoveInitializer(copy);
            g.RenameValue(output, t.Copy);
        }
        if (_ties.Length > 0) g.SortTopologically();
        return new PassResult(model, _ties.Length > 0);
    }

    /// <inheritdoc/>
    public void CheckPostconditions(Model model)
    {
        foreach (var t in _ties)
        {
            if (model.Graph.FindInitializer(t.Copy) is not null)
                throw new OnnxFormatException($"{Name}: '{t.Copy}' is still an initializer after the pass.");
            if (t.Transposed && model.Graph.FindValue(t.Copy)?.Producer is not { OpType: "Transpose" })
                throw new OnnxFormatException($"{Name}: '{t.Copy}' is not the output of a Transpose after the pass.");
        }
    }
}
