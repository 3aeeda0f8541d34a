using System.Buffers;
using System.IO.MemoryMappedFiles;

namespace SafeTune.Onnx;

/// <summary>
/// A file mapped read-only into memory, handing out slices as <see cref="ReadOnlyMemory{T}"/> without copying. The
/// mapping lives as long as any slice does (each slice's memory manager holds it), so tensors read from a large external
/// data file cost address space, not a second copy, and pages the model never touches are never read.
/// </summary>
internal sealed unsafe class MappedFile
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _pointer;

    private MappedFile(MemoryMappedFile file, MemoryMappedViewAccessor view, long length)
    {
        _file = file;
        _view = view;
        Length = length;
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _pointer = p + view.PointerOffset;
    }

    /// <summary>The file's length in bytes.</summary>
    public long Length { get; }

    /// <summary>Maps <paramref name="stream"/>'s file (kept open by the mapping itself).</summary>
    public static MappedFile Open(FileStream stream)
    {
        long length = stream.Length;
        if (length == 0) return new MappedFile(null!, null!, 0);
        var file = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
        var view = file.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
        return new MappedFile(file, view, length);
    }

    /// <summary>The bytes [offset, offset + length), which must lie inside the file and fit one span.</summary>
    public ReadOnlyMemory<byte> Slice(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > Length - length) throw new ArgumentOutOfRangeException(nameof(offset));
        if (length == 0) return ReadOnlyMemory<byte>.Empty;
        if (length > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(length), "a slice must be under 2 GiB.");
        GC.KeepAlive(_file);
        return new Manager(this, _pointer + offset, (int)length).Memory;
    }

    ~MappedFile()
    {
        // The view handle releases itself; this only returns the pointer reference taken in the constructor.
        if (_view is not null && !_view.SafeMemoryMappedViewHandle.IsClosed) _view.SafeMemoryMappedViewHandle.ReleasePointer();
    }

    private sealed class Manager(MappedFile owner, byte* pointer, int length) : MemoryManager<byte>
    {
        // Keeps the mapping alive for as long as this slice is reachable.
        private readonly MappedFile _owner = owner;

        public override Span<byte> GetSpan() => new(pointer, length);

        public override MemoryHandle Pin(int elementIndex = 0)
        {
            GC.KeepAlive(_owner);
            return new MemoryHandle(pointer + elementIndex);
        }

        public override void Unpin() { }

        protected override void Dispose(bool disposing) { }
    }
}
