using System.Text.Json.Nodes;
using SafeTune.Models.Chat;
using SafeTune.Data;

namespace SafeTune.Training.Data;

/// <summary>
/// Reads fine-tuning examples from JSONL, CSV or Parquet files (through <see cref="TabularFile"/>), in any of the layouts
/// of <see cref="SftFormat"/>. A row that lacks a field its layout needs is an error naming the file, the 1-based line
/// (or Parquet row) and the fields the row has.
/// </summary>
public static class SftDataset
{
    /// <summary>The roles a <c>messages</c> list may use.</summary>
    public static IReadOnlyList<string> Roles { get; } = ["system", "user", "assistant"];

    /// <summary>
    /// Reads the examples of <paramref name="spec"/>: <c>PATH[@FIELD=VALUE]...</c>, a file with optional row filters (see
    /// <see cref="TabularSpec"/>).
    /// </summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is empty or malformed, its layout cannot be recognised (the columns
    /// found are listed), or a row lacks a field (file and line named).</exception>
    public static IReadOnlyList<SftExample> Load(string spec, SftLoadOptions? options = null)
    {
        var parsed = TabularSpec.Parse(spec, allowColumn: false);
        var (data, records) = parsed.Read();
        return FromRecords(data, records, options);
    }

    /// <summary>The examples of <paramref name="records"/> (rows of <paramref name="data"/>).</summary>
    public static IReadOnlyList<SftExample> FromRecords(TabularData data, IReadOnlyList<TabularRecord> records, SftLoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(records);
        options ??= new SftLoadOptions();
        var format = options.Format ?? Detect(data);
        var result = new List<SftExample>(records.Count);
        foreach (var r in records)
        {
            var (context, response) = format == SftFormat.Messages ? ReadMessages(r) : ReadFlat(r, format);
            if (options.SystemPrompt is { } system && context.All(m => m.Role != "system")) context.Insert(0, ChatMessage.System(system));
            result.Add(new SftExample(SftExample.MakeId(r.Path, r.Position), context, response, r.Path, r.Position, format));
        }
        return result;
    }

    /// <summary>Recognises the layout from the file's columns (for JSONL: every field seen in the file).</summary>
    /// <exception cref="InvalidDataException">No layout fits; the message lists the columns found and the layouts known.</exception>
    public static SftFormat Detect(TabularData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        bool Has(string c) => data.FindColumn(c) is not null;
        if (Has("messages")) return SftFormat.Messages;
        if (Has("instruction") && (Has("output") || Has("instances"))) return SftFormat.Alpaca;
        if (Has("prompt") && (Has("response") || Has("completion"))) return SftFormat.PromptResponse;
        if (Has("goal") && Has("target")) return SftFormat.GoalTarget;
        if (Has("question") && Has("answer")) return SftFormat.QuestionAnswer;
        throw new InvalidDataException(
            $"{data.Path}: cannot tell the layout of the rows; {data.ColumnsFound}. Known layouts: messages; instruction, [input,] output; " +
            "prompt, response (or completion); goal, target; question, answer");
    }

    private static (List<ChatMessage> Context, string Response) ReadFlat(TabularRecord r, SftFormat format)
    {
        string prompt, response;
        switch (format)
        {
            case SftFormat.Alpaca:
            {
                var instance = r.Get("instances") is JsonArray { Count: > 0 } a && a[0] is JsonObject o ? o : null;
                prompt = Required(r, "instruction", format);
                var input = r.GetText("input") ?? TabularFile.Text(instance?["input"]);
                if (!string.IsNullOrWhiteSpace(input)) prompt = prompt + "\n" + input;
                response = r.GetText("output") ?? TabularFile.Text(instance?["output"]) ?? throw Missing(r, "output", format);
                break;
            }
            case SftFormat.PromptResponse:
                prompt = Required(r, "prompt", format);
                response = r.GetText("response") ?? r.GetText("completion") ?? throw Missing(r, "response", format);
                break;
            case SftFormat.GoalTarget:
                prompt = Required(r, "goal", format);
                response = Required(r, "target", format);
                break;
            case SftFormat.QuestionAnswer:
                prompt = Required(r, "question", format);
                response = Required(r, "answer", format);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(format), format, "not a flat layout");
        }
        return ([ChatMessage.User(prompt)], response);
    }

    private static (List<ChatMessage> Context, string Response) ReadMessages(TabularRecord r)
    {
        if (r.Get("messages") is not JsonArray list)
            throw r.Has("messages")
                ? new InvalidDataException($"{r.Location}: 'messages' is not a list of {{role, content}} objects")
                : Missing(r, "messages", SftFormat.Messages);
        var messages = new List<ChatMessage>(list.Count);
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] is not JsonObject m)
                throw new InvalidDataException($"{r.Location}: messages[{i}] is not a {{role, content}} object");
            var role = TabularFile.Text(m["role"]) ?? throw new InvalidDataException($"{r.Location}: messages[{i}] has no 'role'");
            var content = TabularFile.Text(m["content"]) ?? throw new InvalidDataException($"{r.Location}: messages[{i}] has no 'content'");
            role = role.Trim().ToLowerInvariant();
            if (!Roles.Contains(role))
                throw new InvalidDataException($"{r.Location}: messages[{i}] has the role '{role}'; roles are {string.Join(", ", Roles)}");
            messages.Add(new ChatMessage(role, content));
        }
        if (messages.Count == 0 || messages[^1].Role != "assistant")
            throw new InvalidDataException($"{r.Location}: the last message must be the assistant's response (found {(messages.Count == 0 ? "no messages" : "'" + messages[^1].Role + "'")})");
        var context = messages[..^1];
        if (context.All(m => m.Role != "user"))
            throw new InvalidDataException($"{r.Location}: the messages before the response hold no user message");
        return (context, messages[^1].Content);
    }

    private static string Required(TabularRecord r, string field, SftFormat format) => r.GetText(field) ?? throw Missing(r, field, format);

    private static InvalidDataException Missing(TabularRecord r, string field, SftFormat format) =>
        new($"{r.Location} has no field '{field}' ({Describe(format)} rows need {Needs(format)}); " +
            (r.Fields.Where(p => p.Value is not null).Select(p => p.Key).ToList() is { Count: > 0 } found ? $"fields found: {string.Join(", ", found)}" : "the row has no field with a value"));

    private static string Describe(SftFormat f) => f switch
    {
        SftFormat.Alpaca => "instruction/output",
        SftFormat.PromptResponse => "prompt/response",
        SftFormat.GoalTarget => "goal/target",
        SftFormat.QuestionAnswer => "question/answer",
        _ => "chat",
    };

    private static string Needs(SftFormat f) => f switch
    {
        SftFormat.Alpaca => "instruction and output",
        SftFormat.PromptResponse => "prompt and response",
        SftFormat.GoalTarget => "goal and target",
        SftFormat.QuestionAnswer => "question and answer",
        _ => "messages",
    };
}
