using System.Globalization;
using SafeTune.Models.Chat;

namespace SafeTune.Training.Data;

/// <summary>How the rows of a fine-tuning file are laid out.</summary>
public enum SftFormat
{
    /// <summary>Alpaca: <c>instruction</c>, optional <c>input</c> (joined after a newline), <c>output</c>; Self-Instruct's
    /// <c>instances[0].input/output</c> are read when the row has no <c>input</c>/<c>output</c> of its own.</summary>
    Alpaca,
    /// <summary><c>prompt</c> and <c>response</c> (or <c>completion</c>).</summary>
    PromptResponse,
    /// <summary>AdvBench: <c>goal</c> and <c>target</c>.</summary>
    GoalTarget,
    /// <summary>GSM8K: <c>question</c> and <c>answer</c>.</summary>
    QuestionAnswer,
    /// <summary>Chat: <c>messages</c> = [{role, content}] with roles system, user and assistant; the last message is the
    /// assistant's response and the earlier ones are its context.</summary>
    Messages,
}

/// <summary>One fine-tuning example: a conversation so far and the assistant response to learn.</summary>
/// <param name="Id">A stable id: the file name and the 1-based line (JSONL, CSV: the line the record starts on) or Parquet
/// row, e.g. <c>train.jsonl:17</c>.</param>
/// <param name="Context">The messages before the response (system, user and earlier assistant turns); at least one user message.</param>
/// <param name="Response">The assistant response the model is trained on (and, in evaluation, the reference answer).</param>
/// <param name="Source">The file it was read from.</param>
/// <param name="Position">The line or row within <paramref name="Source"/>.</param>
/// <param name="Format">The row layout it was read with.</param>
public sealed record SftExample(string Id, IReadOnlyList<ChatMessage> Context, string Response, string Source, int Position, SftFormat Format)
{
    /// <summary>The last user message: the request the response answers.</summary>
    public string Prompt => Context.LastOrDefault(m => m.Role == "user")?.Content ?? "";

    /// <summary>"FILE: line N" (or "row N" for Parquet), for messages.</summary>
    public string Location => $"{Source}: {(Source.EndsWith(".parquet", StringComparison.OrdinalIgnoreCase) ? "row" : "line")} {Position.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Builds the id for a row of <paramref name="source"/>.</summary>
    public static string MakeId(string source, int position) =>
        Path.GetFileName(source) + ":" + position.ToString(CultureInfo.InvariantCulture);
}

/// <summary>Options of <see cref="SftDataset.Load(string, SftLoadOptions?)"/>.</summary>
public sealed record SftLoadOptions
{
    /// <summary>The row layout; null recognises it from the columns (messages, then instruction/output, prompt/response,
    /// goal/target, question/answer).</summary>
    public SftFormat? Format { get; init; }

    /// <summary>A system message put before the context of every example that has none of its own.</summary>
    public string? SystemPrompt { get; init; }
}
