using SafeTune.Runtime.Training;
using SafeTune.Safety.Activations;
using SafeTune.Safety.Probes;
using SafeTune.Training.FineTuning;

namespace SafeTune.Training.Risk;

/// <summary>
/// An activation probe trained on another model than the one being fine-tuned (for example a MiniLM guard): it reads
/// that model's activations on the prompt text, an extra forward pass of the probe's model per new prompt, in a session
/// opened once (the model's hash is checked against the probe then). Scores are remembered by example id.
/// </summary>
internal sealed class ExternalProbeRisk : RiskSource
{
    private readonly Dictionary<string, double> _seen = new(StringComparer.Ordinal);
    private readonly ActivationExtractor _extractor;

    /// <summary>Opens the probe's model.</summary>
    /// <exception cref="InvalidDataException">The model file differs from the one the probe was trained on.</exception>
    public ExternalProbeRisk(ProbeFile probe)
    {
        ArgumentNullException.ThrowIfNull(probe);
        probe.CheckModel(probe.ModelPath);
        Probe = probe;
        _extractor = ProbeTraining.CreateExtractor(probe.ModelPath, probe.Tokenizer, probe.Template(), probe.Layers, probe.Pooling, probe.MaxLength,
            attentionQuery: probe.AttentionQuery);
    }

    public ProbeFile Probe { get; }

    /// <inheritdoc/>
    public override string Name => $"probe on {Path.GetFileName(Probe.ModelPath)} (separate pass)";

    /// <inheritdoc/>
    internal override RiskScores Score(TrainingBatch batch, ReferenceOutputs? reference) =>
        new(ScoreOnce(_seen, batch, todo => Probe.Head.PredictProbability(_extractor.Extract([.. todo.Select(r => r.Prompt)]))), 0);

    /// <inheritdoc/>
    public override void Dispose() => _extractor.Dispose();
}
