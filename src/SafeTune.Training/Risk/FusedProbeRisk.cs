using SafeTune.Runtime.Training;
using SafeTune.Safety.Probes;
using SafeTune.Training.FineTuning;

namespace SafeTune.Training.Risk;

/// <summary>
/// An activation probe trained on the model being fine-tuned, fused into the frozen reference pass: the probe's
/// subgraph (<see cref="ProbeGraph"/>) reads the starting model's own prompt activations in the pass that computes the
/// reference log-probabilities anyway, so the risk costs no extra forward pass. Each row's prompt mask marks its prompt
/// tokens; the rows must hold one example each (padding, not packing).
/// </summary>
internal sealed class FusedProbeRisk(ProbeFile probe) : RiskSource
{
    public ProbeFile Probe { get; } = probe;

    /// <inheritdoc/>
    public override string Name => $"probe ({Probe.Head.Kind}, fused into the reference pass)";

    /// <inheritdoc/>
    public override bool NeedsReferencePass => true;

    /// <inheritdoc/>
    public override Func<Onnx.Model, IReadOnlyList<string>>? ExtendReference => model => [ProbeGraph.Append(model, Probe).Output];

    /// <inheritdoc/>
    internal override RiskScores Score(TrainingBatch batch, ReferenceOutputs? reference)
    {
        if (reference is null) throw new InvalidOperationException("the fused probe's risk comes from the reference pass, which did not run.");
        if (!batch.OneExamplePerRow) throw new InvalidDataException("a fused probe scores each row's prompt; a packed row holds several examples.");
        var perRow = reference.Floats(ProbeGraph.DefaultOutput);
        return new RiskScores([.. batch.Examples.Select(e => Math.Clamp((double)perRow[e.Row], 0, 1))], 0);
    }
}
