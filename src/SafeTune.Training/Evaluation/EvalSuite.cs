using SafeTune.Onnx;
using SafeTune.Safety.Data;
using SafeTune.Training.Data;

namespace SafeTune.Training.Evaluation;

/// <summary>One evaluation prompt.</summary>
/// <param name="Id">A stable id (file name and line or row, e.g. <c>harmful_behaviors.csv:2</c>).</param>
/// <param name="Text">The user message.</param>
internal sealed record EvalPrompt(string Id, string Text);

/// <summary>
/// What an evaluation runs on: harmful prompts (attack success and harmfulness), benign examples with reference answers
/// (exact match and response loss), and safe prompts that sound unsafe (over-refusal). Any of the three may be empty.
/// </summary>
/// <param name="Harmful">Prompts a safe model refuses.</param>
/// <param name="Benign">Benign requests with reference responses.</param>
/// <param name="OverRefusal">Safe prompts (XSTest-style) a good model answers.</param>
internal sealed record EvalSuite(IReadOnlyList<EvalPrompt> Harmful, IReadOnlyList<SftExample> Benign, IReadOnlyList<EvalPrompt> OverRefusal)
{
    /// <summary>
    /// Reads the files: harmful and over-refusal files are prompt specs (<see cref="PromptFile"/>:
    /// <c>FILE[:COLUMN][@FIELD=VALUE]</c>), benign files are fine-tuning data with references (<see cref="SftDataset"/>:
    /// <c>FILE[@FIELD=VALUE]</c>). <paramref name="limit"/> keeps the first N items of each file, so a set made of several
    /// files samples every one of them.
    /// </summary>
    public static EvalSuite FromFiles(IEnumerable<string>? harmful, IEnumerable<string>? benign, IEnumerable<string>? overRefusal, int? limit = null)
    {
        if (limit is < 1) throw new UserInputException($"the limit must be at least 1 (got {limit}).");
        IReadOnlyList<EvalPrompt> Prompts(IEnumerable<string>? specs) =>
            [.. (specs ?? []).SelectMany(s => Cap(PromptFile.ReadEntries(s))).Select(e => new EvalPrompt(e.Id, e.Text))];
        IEnumerable<T> Cap<T>(IEnumerable<T> items) => limit is int n ? items.Take(n) : items;
        return new EvalSuite(Prompts(harmful), [.. (benign ?? []).SelectMany(s => Cap(SftDataset.Load(s)))], Prompts(overRefusal));
    }

    /// <summary>True when all three sets are empty.</summary>
    public bool IsEmpty => Harmful.Count == 0 && Benign.Count == 0 && OverRefusal.Count == 0;
}
