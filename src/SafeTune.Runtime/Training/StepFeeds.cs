using Microsoft.ML.OnnxRuntime;
using SafeTune.Autodiff.Losses;

namespace SafeTune.Runtime.Training;

/// <summary>
/// The inputs of one training step that the session's objective declares (<see cref="TrainingSession.StepInputs"/>):
/// the loss's per-token feeds as tensors, which it owns, and the reference pass's outputs the loss reads, which it borrows.
/// </summary>
internal sealed class StepFeeds : IDisposable
{
    private readonly OrtValueBag _owned = new();
    private readonly Dictionary<string, OrtValue> _values = new(StringComparer.Ordinal);

    /// <summary>
    /// Wraps <paramref name="feeds"/> (from <see cref="ResponseLoss.Feeds"/>) and takes every other input
    /// <paramref name="session"/> declares from <paramref name="reference"/>.
    /// </summary>
    public StepFeeds(TrainingSession session, ResponseFeeds feeds, ReferenceOutputs? reference)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(feeds);
        try
        {
            int n = feeds.Index.Length;
            _values[ResponseNames.Index] = _owned.Add(ResponseNames.Index, OrtValues.Wrap(feeds.Index, n));
            foreach (var (name, values) in feeds.Floats) _values[name] = _owned.Add(name, OrtValues.Wrap(values, n));
            foreach (var name in session.StepInputs.Where(x => !_values.ContainsKey(x)))
                _values[name] = reference is not null && reference.Values.TryGetValue(name, out var value) ? value
                    : throw new InvalidOperationException($"the step input '{name}' is neither a feed of the loss nor an output of the reference pass.");
        }
        catch
        {
            _owned.Dispose();
            throw;
        }
    }

    /// <summary>The inputs by name, for <see cref="TrainingSession.TrainStep(TokenBatch, IReadOnlyDictionary{string, OrtValue}?, float)"/>.</summary>
    public IReadOnlyDictionary<string, OrtValue> Values => _values;

    /// <inheritdoc/>
    public void Dispose() => _owned.Dispose();
}
