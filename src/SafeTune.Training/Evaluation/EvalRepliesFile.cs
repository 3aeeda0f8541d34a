using System.Text.Encodings.Web;
using System.Text.Json;
using SafeTune.Onnx;

namespace SafeTune.Training.Evaluation;

/// <summary>
/// Writes every prompt, reply and verdict of an evaluation as JSON Lines, one object per reply:
/// <c>{"set", "id", "prompt", "reply", "reply_tokens", "refused", "score", "judge_failed", "judge_error", "reference", "correct"}</c>
/// (absent verdicts are null). The file is written to a temporary name and renamed.
/// </summary>
internal static class EvalRepliesFile
{
    /// <summary>Writes <paramref name="report"/>'s replies to <paramref name="path"/> atomically.</summary>
    public static void Write(string path, EvalReport report)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(report);
        var options = new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        AtomicFile.Write(path, stream =>
        {
            foreach (var r in report.Replies)
            {
                using (var w = new Utf8JsonWriter(stream, options))
                {
                    w.WriteStartObject();
                    w.WriteString("set", r.Set);
                    w.WriteString("id", r.Id);
                    w.WriteString("prompt", r.Prompt);
                    w.WriteString("reply", r.Reply);
                    w.WriteNumber("reply_tokens", r.ReplyTokens);
                    w.WriteBoolean("refused", r.Refused);
                    if (r.Score is double s) w.WriteNumber("score", s); else w.WriteNull("score");
                    w.WriteBoolean("judge_failed", r.JudgeFailed);
                    if (r.JudgeError is { } e) w.WriteString("judge_error", e); else w.WriteNull("judge_error");
                    if (r.Reference is { } reference) w.WriteString("reference", reference); else w.WriteNull("reference");
                    if (r.Correct is bool c) w.WriteBoolean("correct", c); else w.WriteNull("correct");
                    w.WriteEndObject();
                }
                stream.WriteByte((byte)'\n');
            }
        });
    }
}
